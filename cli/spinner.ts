const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/** A one-line wait indicator on stderr: animated on a terminal, one narration line otherwise. */
export class StderrSpinner {
  private timer: NodeJS.Timeout | undefined;
  private frame = 0;
  constructor(private readonly stderr: NodeJS.WriteStream, private text: string) {
    if (stderr.isTTY) {
      this.draw();
      this.timer = setInterval(() => this.draw(), 80);
      this.timer.unref();
    } else stderr.write(`rbee: ${text}\n`);
  }
  private draw(): void {
    this.stderr.write(`\r\x1b[2K${FRAMES[this.frame++ % FRAMES.length]} ${this.text}`);
  }
  /** Ends the line with a final message (a check or a cross on a terminal); an empty message just clears it. */
  stop(ok: boolean, message: string): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (!message) {
      if (this.stderr.isTTY) this.stderr.write("\r\x1b[2K");
      return;
    }
    if (this.stderr.isTTY) this.stderr.write(`\r\x1b[2K${ok ? "\x1b[32m✔\x1b[39m" : "\x1b[31m✘\x1b[39m"} ${message}\n`);
    else this.stderr.write(`rbee: ${message}\n`);
  }
}
