// What a bearer token may be made of, for the agent's token file and the client alike: printable
// ASCII. An Authorization header carries nothing else as written (Node.js reads headers as
// Latin-1, a token file is UTF-8), so a token with any other character could never match.

/** Whether `token` is one an `Authorization: Bearer` header can carry as written. */
export function isBearerTokenText(token: string): boolean {
  return /^[\x21-\x7e]+$/.test(token);
}
