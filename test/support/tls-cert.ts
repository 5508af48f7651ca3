// A self-signed certificate for servers on 127.0.0.1 in tests, made with the system's `openssl`.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A PEM key and certificate; the certificate is its own CA (pass it as `ca` to trust it). */
export interface TestCertificate {
  readonly key: string;
  readonly cert: string;
}

let made: TestCertificate | undefined;

/**
 * A P-256 certificate for `localhost` and `127.0.0.1`, valid two days, made once per process with
 * `openssl req -x509` (OpenSSL 1.1.1 or later, for `-addext`). Throws, naming `openssl`, when it can't.
 */
export function testCertificate(): TestCertificate {
  if (made) return made;
  const dir = mkdtempSync(join(tmpdir(), 'gp-cert-'));
  try {
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    // biome-ignore format: one option and its value per line
    execFileSync('openssl', [
      'req', '-x509',
      '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-nodes', '-keyout', keyPath, '-out', certPath,
      '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    made = { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8') };
    return made;
  } catch (err) {
    throw new Error('making a test certificate needs openssl (1.1.1 or later) on the PATH', { cause: err });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
