/**
 * Progress on stderr: a redrawn bar with rate and ETA on a terminal; plain lines (every 10 % or 10 s) otherwise,
 * so logs of a batch job stay readable. The rate counts only this session's rows (resumed rows are not work done).
 */
export class Progress {
  private readonly total: number;
  private done: number;
  private readonly startDone: number;
  private readonly t0 = Date.now();
  private readonly tty: boolean;
  private readonly stream: NodeJS.WriteStream;
  private readonly label: string;
  private lastDraw = 0;
  private lastLinePct = -1;
  private lastLineDone = -1;
  private extra = '';

  constructor(total: number, alreadyDone: number, label = 'eval', stream: NodeJS.WriteStream = process.stderr) {
    this.total = total;
    this.done = alreadyDone;
    this.startDone = alreadyDone;
    this.stream = stream;
    this.tty = Boolean(stream.isTTY);
    this.label = label;
    if (alreadyDone > 0) this.stream.write(`${label}: resuming, ${alreadyDone} of ${total} rows already done\n`);
  }

  /** Adds finished rows; `note` is shown after the numbers (e.g. the number of workers). */
  add(n: number, note?: string): void {
    this.done += n;
    if (note !== undefined) this.extra = note;
    this.draw(false);
  }

  note(s: string): void {
    this.extra = s;
    this.draw(false);
  }

  finish(): void {
    this.draw(true);
    if (this.tty) this.stream.write('\n');
  }

  private status(): string {
    const secs = (Date.now() - this.t0) / 1000;
    const rate = secs > 0 ? (this.done - this.startDone) / secs : 0;
    const left = this.total - this.done;
    const eta = rate > 0 ? formatDuration(left / rate) : '?';
    const pct = this.total ? Math.floor((100 * this.done) / this.total) : 100;
    return `${this.done}/${this.total} rows (${pct}%), ${rate.toFixed(1)} rows/s, ETA ${left === 0 ? '0s' : eta}${this.extra ? `, ${this.extra}` : ''}`;
  }

  private draw(force: boolean): void {
    const now = Date.now();
    if (this.tty) {
      if (!force && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      const width = 30;
      const filled = this.total ? Math.round((width * this.done) / this.total) : width;
      this.stream.write(`\r${this.label} [${'='.repeat(filled)}${' '.repeat(width - filled)}] ${this.status()}\x1b[K`);
      return;
    }
    const pct = this.total ? Math.floor((10 * this.done) / this.total) * 10 : 100;
    if ((force && this.done !== this.lastLineDone) || pct > this.lastLinePct || now - this.lastDraw >= 10_000) {
      this.lastLinePct = pct;
      this.lastLineDone = this.done;
      this.lastDraw = now;
      this.stream.write(`${this.label}: ${this.status()}\n`);
    }
  }
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${Math.ceil(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.round(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${Math.round((s % 3600) / 60)}m`;
}
