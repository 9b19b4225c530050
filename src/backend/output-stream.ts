// A Readable fed by a backend's source (engine socket, pty); reading from it resumes the source,
// so a slow client pauses the process instead of growing the agent's memory.
import { Readable } from 'node:stream';

export class OutputStream extends Readable {
  constructor(private readonly resumeSource: () => void) {
    super({ highWaterMark: 64 * 1024 });
  }

  override _read(): void {
    this.resumeSource();
  }
}
