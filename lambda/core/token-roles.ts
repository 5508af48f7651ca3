/**
 * What each value of a request body is to the token estimate (token-estimate.ts): a prompt whose strings
 * are text, tool JSON counted by length, a media object, or nothing; found from its container's role and
 * its key, with keys matched as bytes (nothing decoded, except the rare escaped key).
 */

/** What a JSON value is to the estimate (from its container's role and its key). */
export const SKIP = 0;
export const OPENAI_REQUEST = 1;
export const NATIVE_REQUEST = 2;
export const PROMPT = 3;
export const RAW = 4;
export const IMAGE = 5;
export const AUDIO = 6;
export const BLOB = 7;
export const FILE = 8;
export const FILE_REF = 9;
export const DATA = 10;
export const MIME = 11;
export const FILE_ID = 12;

const NOT_TEXT =
  'role type id call_id tool_call_id detail format status filename mimeType mime_type fileUri file_uri thoughtSignature thought_signature videoMetadata video_metadata mediaResolution media_resolution encrypted_content cache_control';
const MEMBERS: ReadonlyArray<[number, Record<string, number>]> = [
  [
    OPENAI_REQUEST,
    {
      messages: PROMPT,
      prompt: PROMPT,
      input: PROMPT,
      instructions: PROMPT,
      suffix: PROMPT,
      tools: RAW,
      functions: RAW,
    },
  ],
  [
    NATIVE_REQUEST,
    {
      contents: PROMPT,
      content: PROMPT,
      systemInstruction: PROMPT,
      system_instruction: PROMPT,
      title: PROMPT,
      tools: RAW,
      requests: NATIVE_REQUEST,
      generateContentRequest: NATIVE_REQUEST,
      generate_content_request: NATIVE_REQUEST,
    },
  ],
  [
    PROMPT,
    {
      ...Object.fromEntries(NOT_TEXT.split(' ').map((key) => [key, SKIP])),
      image_url: IMAGE,
      input_audio: AUDIO,
      inlineData: BLOB,
      inline_data: BLOB,
      fileData: FILE,
      file_data: FILE,
      file_id: FILE_ID,
      file_url: FILE_ID,
      functionCall: RAW,
      function_call: RAW,
      functionResponse: RAW,
      function_response: RAW,
    },
  ],
  [IMAGE, { url: IMAGE }],
  [AUDIO, { data: DATA }],
  [BLOB, { data: DATA, mimeType: MIME, mime_type: MIME }],
  [FILE_REF, { mimeType: MIME, mime_type: MIME }],
];

/** Every key some role reads, numbered; by length, as bytes, for matching without decoding. */
const KEY_IDS = new Map<string, number>();
for (const [, members] of MEMBERS)
  for (const key of Object.keys(members)) if (!KEY_IDS.has(key)) KEY_IDS.set(key, KEY_IDS.size);
const KEYS_BY_LENGTH: Array<Array<[Uint8Array, number]>> = [];
for (const [key, id] of KEY_IDS) {
  KEYS_BY_LENGTH[key.length] ??= [];
  KEYS_BY_LENGTH[key.length]!.push([new TextEncoder().encode(key), id]);
}
/** ROLE_OF[role][keyId]: the role of that member; -1 for the container's default. */
const ROLE_OF: Int8Array[] = [];
for (let role = SKIP; role <= FILE_ID; role++) ROLE_OF[role] = new Int8Array(KEY_IDS.size).fill(-1);
for (const [role, members] of MEMBERS)
  for (const [key, member] of Object.entries(members)) ROLE_OF[role]![KEY_IDS.get(key)!] = member;
/** The role of a container's members: objects by key, arrays all alike. */
export function containerRole(role: number, isArray: boolean): number {
  if (role === PROMPT || role === OPENAI_REQUEST || role === NATIVE_REQUEST) return role;
  if (isArray) return SKIP;
  if (role === FILE) return FILE_REF;
  return role === IMAGE || role === AUDIO || role === BLOB ? role : SKIP;
}

/** The role of a member of a container of role `container`, its key at bytes[start, end) (quotes excluded). */
export function memberRole(
  container: number,
  bytes: Uint8Array,
  start: number,
  end: number,
  escaped: boolean,
): number {
  if (container === SKIP) return SKIP;
  const id = escaped ? escapedKeyId(bytes, start, end) : keyId(bytes, start, end);
  const member = id < 0 ? -1 : ROLE_OF[container]![id]!;
  return member >= 0 ? member : container === PROMPT ? PROMPT : SKIP;
}

function keyId(bytes: Uint8Array, start: number, end: number): number {
  const candidates = KEYS_BY_LENGTH[end - start];
  if (candidates === undefined) return -1;
  next: for (const [key, id] of candidates) {
    for (let k = 0; k < key.length; k++) if (bytes[start + k] !== key[k]) continue next;
    return id;
  }
  return -1;
}

const decoder = new TextDecoder();
function escapedKeyId(bytes: Uint8Array, start: number, end: number): number {
  if (end - start > 128) return -1;
  try {
    return KEY_IDS.get(JSON.parse(decoder.decode(bytes.subarray(start - 1, end + 1))) as string) ?? -1;
  } catch {
    return -1;
  }
}
