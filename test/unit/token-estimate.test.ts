import { describe, expect, it } from 'vitest';
import { type EstimateTarget, estimateInputTokens } from '../../lambda/core/token-estimate.js';
import { random } from '../support/random.js';

const chat: EstimateTarget = { kind: 'openai', rest: 'chat/completions' };
const completions: EstimateTarget = { kind: 'openai', rest: 'completions' };
const responses: EstimateTarget = { kind: 'openai', rest: 'responses' };
const embeddings: EstimateTarget = { kind: 'openai', rest: 'embeddings' };
const generate: EstimateTarget = { kind: 'native', method: 'generateContent' };
const countTokens: EstimateTarget = { kind: 'native', method: 'countTokens' };
const embed: EstimateTarget = { kind: 'native', method: 'embedContent' };
const batchEmbed: EstimateTarget = { kind: 'native', method: 'batchEmbedContents' };

const estimate = (target: EstimateTarget, body: unknown) =>
  estimateInputTokens(target, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)));
const b64 = (bytes: Buffer) => bytes.toString('base64');
/** Native body with one inline part (no text, so the estimate is the part's cost alone). */
const inline = (mimeType: string | undefined, data: string) => ({
  contents: [
    { role: 'user', parts: [{ inlineData: mimeType === undefined ? { data } : { mimeType, data } }] },
  ],
});
/** OpenAI chat body with one content part. */
const part = (p: unknown) => ({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: [p] }] });

// --- Media fixtures: real headers, zero-filled payloads. ---
const u32be = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
const u32le = (n: number) => Buffer.from([n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24]);
const u16le = (n: number) => Buffer.from([n & 255, n >>> 8]);
const ascii = (text: string) => Buffer.from(text, 'latin1');
const zeros = (n: number) => Buffer.alloc(n);

const png = (w: number, h: number) =>
  Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 13, 10, 26, 10]),
    u32be(13),
    ascii('IHDR'),
    u32be(w),
    u32be(h),
    zeros(200),
  ]);
const gif = (w: number, h: number) => Buffer.concat([ascii('GIF89a'), u16le(w), u16le(h), zeros(200)]);
const webp = (chunk: 'VP8 ' | 'VP8L' | 'VP8X', w: number, h: number) => {
  const head = Buffer.concat([ascii('RIFF'), u32le(1000), ascii('WEBP'), ascii(chunk), u32le(900)]);
  if (chunk === 'VP8 ')
    return Buffer.concat([head, Buffer.from([0, 0, 0, 0x9d, 0x01, 0x2a]), u16le(w), u16le(h), zeros(200)]);
  if (chunk === 'VP8L') {
    const bits = ((w - 1) | ((h - 1) << 14)) >>> 0;
    return Buffer.concat([head, Buffer.from([0x2f]), u32le(bits), zeros(200)]);
  }
  return Buffer.concat([
    head,
    zeros(4),
    u32le(w - 1).subarray(0, 3),
    u32le(h - 1).subarray(0, 3),
    zeros(200),
  ]);
};
/** A JPEG whose start-of-frame comes after an EXIF segment of `exif` bytes (far past any header prefix). */
const jpeg = (w: number, h: number, exif = 0) => {
  const app1 =
    exif > 0
      ? Buffer.concat([Buffer.from([0xff, 0xe1, (exif + 2) >> 8, (exif + 2) & 255]), zeros(exif)])
      : zeros(0);
  const sof = Buffer.from([0xff, 0xc0, 0, 17, 8, h >> 8, h & 255, w >> 8, w & 255]);
  return Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16]), zeros(14), app1, sof, zeros(2000)]);
};
const wav = (seconds: number, rate = 16_000, channels = 1, list = 0) => {
  const byteRate = rate * channels * 2;
  const fmt = Buffer.concat([
    ascii('fmt '),
    u32le(16),
    u16le(1),
    u16le(channels),
    u32le(rate),
    u32le(byteRate),
    u16le(channels * 2),
    u16le(16),
  ]);
  const info = list > 0 ? Buffer.concat([ascii('LIST'), u32le(list), zeros(list)]) : zeros(0);
  const data = Buffer.concat([ascii('data'), u32le(seconds * byteRate), zeros(seconds * byteRate)]);
  return Buffer.concat([
    ascii('RIFF'),
    u32le(4 + fmt.length + info.length + data.length),
    ascii('WAVE'),
    fmt,
    info,
    data,
  ]);
};
const box = (type: string, payload: Buffer) =>
  Buffer.concat([u32be(8 + payload.length), ascii(type), payload]);
/** An MP4 with its movie header after a big `mdat` (not "fast start"), version 0 or 1. */
const mp4 = (timescale: number, duration: number, version: 0 | 1 = 0) => {
  const times =
    version === 0
      ? Buffer.concat([zeros(8), u32be(timescale), u32be(duration)])
      : Buffer.concat([zeros(16), u32be(timescale), u32be(0), u32be(duration)]);
  const mvhd = box('mvhd', Buffer.concat([Buffer.from([version, 0, 0, 0]), times, zeros(80)]));
  const moov = box('moov', Buffer.concat([box('udta', zeros(40)), mvhd]));
  return Buffer.concat([box('ftyp', ascii('isom\0\0\0\0isomiso2')), box('mdat', zeros(300_000)), moov]);
};
const pdf = (bytes: number, linearizedPages?: number) => {
  const lin =
    linearizedPages === undefined
      ? ''
      : `1 0 obj\n<</Linearized 1/L ${bytes}/H [ 600 150]/O 4/E 3000/N ${linearizedPages}/T 1200>>\nendobj\n`;
  const head = ascii(`%PDF-1.6\n%\xe2\xe3\xcf\xd3\n${lin}`);
  return Buffer.concat([head, zeros(bytes - head.length)]);
};

const PROSE = 'Summarise the attached quarterly report in three bullet points, café naïveté included. ';
const text = (chars: number) => PROSE.repeat(Math.ceil(chars / PROSE.length)).slice(0, chars);

describe('Function: estimateInputTokens', () => {
  describe('text, at about characters / 4', () => {
    const t = text(4000);
    it.each<[string, EstimateTarget, unknown, number]>([
      ['chat, string content', chat, { model: 'm', messages: [{ role: 'user', content: t }] }, 4000],
      [
        'chat, system + user turns',
        chat,
        {
          model: 'm',
          messages: [
            { role: 'system', content: t },
            { role: 'user', content: t },
          ],
        },
        8000,
      ],
      ['chat, text parts', chat, part({ type: 'text', text: t }), 4000],
      [
        'chat, named message',
        chat,
        { model: 'm', messages: [{ role: 'user', name: 'alice', content: t }] },
        4005,
      ],
      ['completions, prompt string', completions, { model: 'm', prompt: t, suffix: t }, 8000],
      ['completions, prompt array', completions, { model: 'm', prompt: [t, t] }, 8000],
      ['responses, input string', responses, { model: 'm', input: t, instructions: t }, 8000],
      [
        'responses, input items',
        responses,
        { model: 'm', input: [{ role: 'user', content: [{ type: 'input_text', text: t }] }] },
        4000,
      ],
      ['embeddings, input array', embeddings, { model: 'm', input: [t, t, t] }, 12000],
      [
        'native contents',
        generate,
        { contents: [{ role: 'user', parts: [{ text: t }, { text: t }] }] },
        8000,
      ],
      [
        'native systemInstruction',
        generate,
        { systemInstruction: { parts: [{ text: t }] }, contents: [{ parts: [{ text: t }] }] },
        8000,
      ],
      [
        'native snake_case',
        generate,
        { system_instruction: { parts: [{ text: t }] }, contents: [{ parts: [{ text: t }] }] },
        8000,
      ],
      [
        'countTokens generateContentRequest',
        countTokens,
        { generateContentRequest: { model: 'models/m', contents: [{ parts: [{ text: t }] }] } },
        4000,
      ],
      ['embedContent', embed, { content: { parts: [{ text: t }] }, title: 'Q3' }, 4002],
      [
        'batchEmbedContents',
        batchEmbed,
        {
          requests: [
            { model: 'models/m', content: { parts: [{ text: t }] } },
            { model: 'models/m', content: { parts: [{ text: t }] } },
          ],
        },
        8000,
      ],
    ])('%s', (_name, target, body, chars) => {
      const tokens = estimate(target, body);
      expect(tokens).toBeGreaterThanOrEqual(Math.ceil(chars / 4) * 0.9);
      expect(tokens).toBeLessThanOrEqual(Math.ceil(chars / 4) * 1.1);
    });

    it('counts characters as JavaScript does: escapes decoded, é one, 😀 two', () => {
      expect(estimate(generate, { contents: [{ parts: [{ text: 'é'.repeat(400) }] }] })).toBe(100);
      expect(estimate(generate, { contents: [{ parts: [{ text: '😀'.repeat(200) }] }] })).toBe(100);
      expect(estimate(generate, { contents: [{ parts: [{ text: '\n"\\\u0001'.repeat(100) }] }] })).toBe(100);
      expect(estimate(generate, `{"contents":[{"parts":[{"text":"${'\\u00e9'.repeat(400)}"}]}]}`)).toBe(100);
    });

    it('reads one long message full of escapes in one pass', () => {
      // No quote in it: each escape must not send a search for the closing quote to the end of the body.
      const line = `${'a'.repeat(30)}\n\t\\/`;
      const body = { model: 'm', messages: [{ role: 'user', content: line.repeat(200_000) }] };
      expect(estimate(chat, body)).toBe((line.length * 200_000) / 4);
    });

    it('does not count labels and identifiers as text', () => {
      const id = 'x'.repeat(4000);
      const body = {
        model: 'm',
        messages: [
          { role: 'tool', tool_call_id: id, content: 'ok' },
          {
            role: 'user',
            content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png', detail: id } }],
          },
        ],
      };
      expect(estimate(chat, body)).toBe(1 + 258);
      expect(
        estimate(generate, {
          contents: [{ role: id, parts: [{ text: 'ok', thoughtSignature: id }] }],
          generationConfig: { stopSequences: [id] },
        }),
      ).toBe(1);
    });

    it('reads keys spelled with escapes as the keys they are', () => {
      expect(estimate(generate, `{"cont\\u0065nts":[{"parts":[{"t\\u0065xt":"${'a'.repeat(400)}"}]}]}`)).toBe(
        100,
      );
    });

    it('counts token-id prompts one token a number', () => {
      expect(estimate(completions, { model: 'm', prompt: [1, 2, 3, 4, 5] })).toBe(5);
      expect(
        estimate(embeddings, {
          model: 'm',
          input: [
            [1, 2, 3],
            [4, 5],
          ],
        }),
      ).toBe(5);
    });
  });

  describe('tools, at JSON length / 4', () => {
    const tools = [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: text(600),
          parameters: { type: 'object', properties: { city: { type: 'string' } } },
        },
      },
    ];
    const messages = [{ role: 'user', content: 'hi' }];
    const jsonTokens = (value: unknown) => JSON.stringify(value).length / 4;

    it.each<[string, EstimateTarget, unknown, unknown, number]>([
      ['OpenAI tools', chat, { model: 'm', messages }, { model: 'm', messages, tools }, jsonTokens(tools)],
      [
        'OpenAI legacy functions',
        chat,
        { model: 'm', messages },
        { model: 'm', messages, functions: [tools[0]!.function] },
        jsonTokens([tools[0]!.function]),
      ],
      [
        'native tools',
        generate,
        { contents: [{ parts: [{ text: 'hi' }] }] },
        { contents: [{ parts: [{ text: 'hi' }] }], tools: [{ functionDeclarations: [tools[0]!.function] }] },
        jsonTokens([{ functionDeclarations: [tools[0]!.function] }]),
      ],
      [
        'native function call and response parts',
        generate,
        { contents: [] },
        {
          contents: [
            { role: 'model', parts: [{ functionCall: { name: 'f', args: { q: text(400) } } }] },
            { role: 'user', parts: [{ functionResponse: { name: 'f', response: { r: text(400) } } }] },
          ],
        },
        jsonTokens({ name: 'f', args: { q: text(400) } }) +
          jsonTokens({ name: 'f', response: { r: text(400) } }),
      ],
      [
        'OpenAI tool call arguments',
        chat,
        { model: 'm', messages: [] },
        {
          model: 'm',
          messages: [
            {
              role: 'assistant',
              tool_calls: [
                {
                  id: 'call_1',
                  type: 'function',
                  function: { name: 'f', arguments: JSON.stringify({ q: text(400) }) },
                },
              ],
            },
          ],
        },
        (1 + JSON.stringify({ q: text(400) }).length) / 4,
      ],
    ])('%s', (_name, target, without, withTools, expected) => {
      const added = estimate(target, withTools) - estimate(target, without);
      expect(Math.abs(added - expected)).toBeLessThanOrEqual(2);
    });
  });

  describe('media, by Gemini per-item costs', () => {
    const jpegUrl = `data:image/jpeg;base64,${b64(jpeg(4000, 3000, 30_000))}`;
    it.each<[string, EstimateTarget, unknown, number]>([
      ['PNG ≤ 384 px: one image', generate, inline('image/png', b64(png(384, 200))), 258],
      ['PNG 385×10: one tile', generate, inline('image/png', b64(png(385, 10))), 258],
      ['PNG 1600×800: 3×2 tiles', generate, inline('image/png', b64(png(1600, 800))), 6 * 258],
      ['GIF 2000×100: 3×1 tiles', generate, inline('image/gif', b64(gif(2000, 100))), 3 * 258],
      ['WebP lossy 800×600: 2×1 tiles', generate, inline('image/webp', b64(webp('VP8 ', 800, 600))), 2 * 258],
      [
        'WebP lossless 1537×10: 3×1 tiles',
        generate,
        inline('image/webp', b64(webp('VP8L', 1537, 10))),
        3 * 258,
      ],
      [
        'WebP extended 3000×3000: 4×4 tiles',
        generate,
        inline('image/webp', b64(webp('VP8X', 3000, 3000))),
        16 * 258,
      ],
      [
        'JPEG 4000×3000 after a 30 kB EXIF segment: 6×4 tiles',
        generate,
        inline('image/jpeg', b64(jpeg(4000, 3000, 30_000))),
        24 * 258,
      ],
      ['image without a MIME type, sniffed', generate, inline(undefined, b64(png(1000, 1000))), 4 * 258],
      ['image of unreadable format (HEIC)', generate, inline('image/heic', b64(zeros(5000))), 258],
      ['image with invalid base64', generate, inline('image/png', '!!!not base64!!!'), 258],
      [
        'hostile PNG header, sides taken as 16 384 px',
        generate,
        inline('image/png', b64(png(1e9, 1e9))),
        22 * 22 * 258,
      ],
      [
        'OpenAI image_url data: URL (JPEG)',
        chat,
        part({ type: 'image_url', image_url: { url: jpegUrl } }),
        24 * 258,
      ],
      ['OpenAI image_url string', chat, part({ type: 'image_url', image_url: jpegUrl }), 24 * 258],
      [
        'OpenAI image_url http(s)',
        chat,
        part({ type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } }),
        258,
      ],
      [
        'Responses input_image data: URL',
        responses,
        { model: 'm', input: [{ role: 'user', content: [{ type: 'input_image', image_url: jpegUrl }] }] },
        24 * 258,
      ],
      ['WAV 10 s (16 kHz mono): 32/s', generate, inline('audio/wav', b64(wav(10))), 320],
      [
        'WAV 3 s stereo 44.1 kHz after a LIST chunk',
        generate,
        inline('audio/wav', b64(wav(3, 44_100, 2, 5000))),
        96,
      ],
      [
        'OpenAI input_audio WAV',
        chat,
        part({ type: 'input_audio', input_audio: { data: b64(wav(10)), format: 'wav' } }),
        320,
      ],
      [
        'OpenAI input_audio MP3: 128 kbit/s assumed',
        chat,
        part({
          type: 'input_audio',
          input_audio: { data: b64(Buffer.concat([ascii('ID3'), zeros(159_997)])), format: 'mp3' },
        }),
        320,
      ],
      ['native audio/ogg: 128 kbit/s assumed', generate, inline('audio/ogg', b64(zeros(32_000))), 64],
      [
        'MP4 video, mvhd v0 after mdat: 263/s',
        generate,
        inline('video/mp4', b64(mp4(1000, 12_500))),
        Math.ceil(12.5 * 263),
      ],
      ['MP4 video, mvhd v1', generate, inline('video/mp4', b64(mp4(600, 6000, 1))), 10 * 263],
      ['M4A audio by its movie header', generate, inline('audio/mp4', b64(mp4(1000, 30_000))), 30 * 32],
      ['WebM video: 2 Mbit/s assumed', generate, inline('video/webm', b64(zeros(500_000))), 2 * 263],
      ['linearized PDF: its page count', generate, inline('application/pdf', b64(pdf(40_000, 12))), 12 * 258],
      [
        'PDF without page count: 50 kB a page',
        generate,
        inline('application/pdf', b64(pdf(120_000))),
        3 * 258,
      ],
      [
        'OpenAI file part, PDF data: URL',
        chat,
        part({
          type: 'file',
          file: { filename: 'a.pdf', file_data: `data:application/pdf;base64,${b64(pdf(40_000, 7))}` },
        }),
        7 * 258,
      ],
      [
        'text/plain inline: decoded bytes / 4',
        generate,
        inline('text/plain', b64(Buffer.from('a'.repeat(4000)))),
        1000,
      ],
      [
        'native fileData image by URI',
        generate,
        {
          contents: [
            {
              parts: [
                {
                  fileData: {
                    mimeType: 'image/png',
                    fileUri: 'https://generativelanguage.googleapis.com/v1beta/files/x',
                  },
                },
              ],
            },
          ],
        },
        258,
      ],
      [
        'native file_data video by URI',
        generate,
        { contents: [{ parts: [{ file_data: { mime_type: 'video/mp4', file_uri: 'gs://b/v.mp4' } }] }] },
        2580,
      ],
      ['OpenAI file_id', chat, part({ type: 'file', file: { file_id: 'file-abc' } }), 2580],
      [
        'Responses input_file by URL',
        responses,
        {
          model: 'm',
          input: [{ role: 'user', content: [{ type: 'input_file', file_url: 'https://example.com/a.pdf' }] }],
        },
        2580,
      ],
    ])('%s', (_name, target, body, tokens) => {
      expect(estimate(target, body)).toBe(tokens);
    });

    it('reads base64 whose slashes are escaped (\\/), as some encoders write it', () => {
      const data = b64(jpeg(1600, 800, 2000));
      expect(data).toContain('/');
      const body = JSON.stringify(inline('image/jpeg', data)).replaceAll('/', '\\/');
      expect(estimate(generate, body)).toBe(6 * 258);
      const url = JSON.stringify(
        part({ type: 'image_url', image_url: { url: `data:image/jpeg;base64,${data}` } }),
      ).replaceAll('/', '\\/');
      expect(estimate(chat, url)).toBe(6 * 258);
    });

    it('adds text and several media items together', () => {
      const body = {
        contents: [
          {
            parts: [
              { text: 'a'.repeat(400) },
              { inlineData: { data: b64(png(10, 10)), mimeType: 'image/png' } },
              { inlineData: { mimeType: 'audio/wav', data: b64(wav(2)) } },
            ],
          },
        ],
      };
      expect(estimate(generate, body)).toBe(100 + 258 + 64);
    });
  });

  describe('hostile bodies: a finite positive estimate, never an error', () => {
    const deep = (n: number) => `{"contents":${'['.repeat(n)}${']'.repeat(n)}}`;
    const cases: Array<[string, EstimateTarget, string | Buffer]> = [
      ['not JSON', chat, 'model=gemini&prompt=hello'],
      ['binary', generate, Buffer.from(Array.from({ length: 4096 }, (_, k) => (k * 131) % 256))],
      ['only whitespace', chat, '   \n '],
      ['nested 100 000 deep', generate, deep(100_000)],
      ['nested past the bound', chat, `{"messages":${'['.repeat(65)}${']'.repeat(65)}}`],
      ['truncated', chat, '{"messages":[{"role":"user","content":"abc'],
      ['a lone backslash at the end', chat, '{"messages":"\\'],
      ['a bad \\u escape', chat, '{"messages":"\\u12"}'],
      [
        'wrong types',
        chat,
        '{"messages":5,"prompt":{"a":[true,null]},"tools":"x","input":[{"image_url":7,"input_audio":"x","file":[1]}]}',
      ],
      [
        'wrong native types',
        generate,
        '{"contents":"x","systemInstruction":[1],"tools":{},"requests":7,"generateContentRequest":[[]]}',
      ],
      [
        'media of wrong types',
        generate,
        '{"contents":[{"parts":[{"inlineData":"x"},{"inlineData":{"data":5,"mimeType":["image/png"]}},{"fileData":7}]}]}',
      ],
      ['a million-element array', completions, `{"prompt":[${'0,'.repeat(1_000_000)}0]}`],
      ['many empty objects', chat, `{"messages":[${'{},'.repeat(500_000)}{}]}`],
      ['many escaped keys', generate, `{"contents":[{${'"\\u0074":1,'.repeat(10_000)}"x":1}]}`],
      ['a UTF-16 body', chat, Buffer.from('{"messages":[{"content":"hi"}]}', 'utf16le')],
      [
        'broken data URLs',
        chat,
        JSON.stringify({
          messages: [
            {
              content: [
                'data:image/png;base64',
                'data:,',
                'data:text/plain,hi',
                'data:;base64,!!',
                'data:image/png;base64,',
              ].map((url) => ({ image_url: url })),
            },
          ],
        }),
      ],
      ['MP4 with a zero timescale', generate, JSON.stringify(inline('video/mp4', b64(mp4(0, 100))))],
      [
        'WAV with a zero byte rate',
        generate,
        JSON.stringify(
          inline(
            'audio/wav',
            b64(
              Buffer.concat([
                ascii('RIFF'),
                u32le(100),
                ascii('WAVEfmt '),
                u32le(16),
                zeros(16),
                ascii('data'),
                u32le(0xffffffff),
              ]),
            ),
          ),
        ),
      ],
      [
        'MP4 with broken boxes',
        generate,
        JSON.stringify(
          inline(
            'video/mp4',
            b64(Buffer.concat([box('ftyp', zeros(8)), u32be(1), ascii('mdat'), u32be(0), u32be(4)])),
          ),
        ),
      ],
      [
        'MP4 claiming an endless movie',
        generate,
        JSON.stringify(inline('video/mp4', b64(mp4(1, 0xfffffffe)))),
      ],
      [
        'JPEG of empty segments',
        generate,
        JSON.stringify(
          inline(
            'image/jpeg',
            b64(
              Buffer.concat([
                Buffer.from([0xff, 0xd8]),
                Buffer.from([0xff, 0xe0, 0, 0]).fill(0, 2),
                zeros(100).fill(0xff),
              ]),
            ),
          ),
        ),
      ],
    ];
    it.each(cases)('%s', (_name, target, body) => {
      const tokens = estimateInputTokens(target, typeof body === 'string' ? Buffer.from(body) : body);
      expect(Number.isFinite(tokens)).toBe(true);
      expect(tokens).toBeGreaterThan(0);
      expect(Number.isInteger(tokens)).toBe(true);
    });

    it('counts a body it cannot read by its bytes / 4', () => {
      expect(estimate(chat, 'x'.repeat(4000))).toBe(1000);
      expect(estimate(generate, deep(100_000))).toBe(Math.ceil(deep(100_000).length / 4));
    });

    it('counts an empty body as nothing', () => {
      expect(estimateInputTokens(chat, new Uint8Array(0))).toBe(0);
    });

    it('survives every one-byte corruption of a multimodal body', () => {
      const valid = Buffer.from(
        JSON.stringify({
          contents: [
            {
              parts: [
                { text: 'hi \\ "q"' },
                { inlineData: { mimeType: 'image/jpeg', data: b64(jpeg(900, 900, 100)).slice(0, 400) } },
                { functionCall: { name: 'f', args: { a: [1, 2] } } },
              ],
            },
          ],
          tools: [{}],
        }),
      );
      const rng = random(11);
      for (let k = 0; k < 2000; k++) {
        const body = Buffer.from(valid);
        const at = rng.int(body.length);
        body[at] = rng.pick([0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x00, 0xff, rng.int(256)]);
        const tokens = estimateInputTokens(
          rng.next() < 0.5 ? generate : chat,
          body.subarray(0, rng.next() < 0.2 ? at + 1 : body.length),
        );
        expect(Number.isFinite(tokens) && tokens > 0).toBe(true);
      }
    });
  });
});
