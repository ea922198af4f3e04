// Frame-rate meter for the 3D view (exposed to tests as __twinline.fps()).

/** Frames-per-second over a sliding one-second window. */
export class FpsMeter {
  // Timestamps of the frames drawn in the last second (oldest first).
  private stamps: number[] = [];
  tick(now: number): void {
    this.stamps.push(now);
    while (this.stamps.length && now - this.stamps[0] > 1000) this.stamps.shift();
  }
  fps(now: number): number {
    while (this.stamps.length && now - this.stamps[0] > 1000) this.stamps.shift();
    return this.stamps.length;
  }
}

