import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lambda/core/config/parse.js';
import { buildGroup, targetOf } from '../../lambda/core/forwarding/groups.js';

describe('Function: targetOf', () => {
  it('keeps the circuit of a group behind a proxy apart from a direct group at the same URL, without credentials', () => {
    // Prepare
    const config = parseConfig({
      client_tokens: ['t'],
      groups: [
        { name: 'proxied', api_keys: ['k1'], proxy_url: 'socks5h://u:s3cret@p.example:1080' },
        { name: 'direct', api_keys: ['k2'] },
      ],
    });
    const [proxied, direct] = config.groups.map((g) => buildGroup(g, config.upstream));
    const openai = { kind: 'openai', rest: 'chat/completions', query: '' } as const;

    // Act
    const viaProxy = targetOf(openai, proxied!, config.upstream);
    const straight = targetOf(openai, direct!, config.upstream);

    // Assess
    expect(straight).toBe(config.groups[1]!.target_url);
    expect(viaProxy).toBe(`${straight} via socks5h://p.example:1080`);
    expect(viaProxy).not.toContain('s3cret');
  });
});

describe('Function: buildGroup', () => {
  it('leaves keys marked disabled out of rotation, with or without a project', () => {
    // Prepare
    const config = parseConfig({
      client_tokens: ['t'],
      groups: [
        {
          name: 'g',
          api_keys: ['k1', { key: 'k2', disabled: true }, { key: 'k3', project: 'p', disabled: false }],
        },
      ],
    });

    // Act
    const group = buildGroup(config.groups[0]!, config.upstream);

    // Assess
    expect([...group.keys.values()]).toEqual(['k1', 'k3']);
    expect(group.refs.map((r) => r.budget)).toEqual([`key:${group.keyIds[0]}`, 'project:p']);
  });
});
