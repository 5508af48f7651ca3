import { describe, expect, it } from 'vitest';
import { UsageTail } from '../../lambda/core/usage.js';

const feed = (...chunks: string[]) => {
  const tail = new UsageTail();
  for (const c of chunks) tail.see(Buffer.from(c));
  return tail.usage();
};

describe('Class: UsageTail', () => {
  it('reads OpenAI-compatible usage from a JSON body', () => {
    expect(
      feed('{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}}'),
    ).toEqual({
      input: 12,
      output: 34,
    });
  });

  it('reads the last usage of an SSE stream, split across chunks', () => {
    expect(
      feed(
        'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n',
        'data: {"choices":[],"usage":{"prompt_to',
        'kens":5,"completion_tokens":7}}\n\ndata: [DONE]\n\n',
      ),
    ).toEqual({ input: 5, output: 7 });
  });

  it('reads native usageMetadata', () => {
    expect(feed('{"candidates":[],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":9}}')).toEqual(
      {
        input: 3,
        output: 9,
      },
    );
  });

  it('reports nothing when the answer has no usage, and keeps only a bounded tail', () => {
    expect(feed('{"data":[{"embedding":[0.1]}]}')).toBeUndefined();
    expect(feed('{"usage":{"prompt_tokens":1,"completion_tokens":2}}', 'x'.repeat(10_000))).toBeUndefined();
  });
});
