import type { ProxyResponse } from './http.js';

/** OpenAI's error body: `{"error":{"message","type","param","code"}}`. */
export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export function openAiErrorBody(message: string, type: string, code: string | null = null): OpenAiErrorBody {
  return { error: { message, type, param: null, code } };
}

/** A complete JSON error response in OpenAI's shape. */
export function openAiError(
  status: number,
  message: string,
  type: string,
  code: string | null = null,
  headers: Record<string, string> = {},
): ProxyResponse {
  return {
    status,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(openAiErrorBody(message, type, code)),
  };
}

/** The in-band error event that ends an SSE stream which failed after its first byte. */
export function sseErrorEvent(message: string, code = 'upstream_stream_error'): string {
  return `data: ${JSON.stringify(openAiErrorBody(message, 'upstream_error', code))}\n\n`;
}
