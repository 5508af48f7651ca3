/**
 * Token usage as Gemini reports it at the end of an answer: OpenAI-compatible `usage.prompt_tokens` /
 * `completion_tokens`, or native `usageMetadata.promptTokenCount` / `candidatesTokenCount`. Only the last
 * few KiB of a body are kept (usage comes last; in a stream, in the final chunks), so memory stays flat.
 */
const TAIL_BYTES = 4096;
const INPUT = /"(?:prompt_tokens|promptTokenCount)"\s*:\s*(\d+)/g;
const OUTPUT = /"(?:completion_tokens|candidatesTokenCount)"\s*:\s*(\d+)/g;

function last(pattern: RegExp, text: string): number | undefined {
  let value: number | undefined;
  for (const m of text.matchAll(pattern)) value = Number(m[1]);
  return value;
}

export class UsageTail {
  private tail = '';

  see(chunk: Uint8Array): void {
    // Only a chunk's own last TAIL_BYTES can matter; decoding as latin1 keeps byte positions.
    const from = Math.max(0, chunk.byteLength - TAIL_BYTES);
    const text = Buffer.from(chunk.buffer, chunk.byteOffset + from, chunk.byteLength - from).toString(
      'latin1',
    );
    this.tail = (this.tail + text).slice(-TAIL_BYTES);
  }

  /** The last reported usage in what was seen, if both counts are there. */
  usage(): { input: number; output: number } | undefined {
    const input = last(INPUT, this.tail);
    const output = last(OUTPUT, this.tail);
    return input === undefined || output === undefined ? undefined : { input, output };
  }
}
