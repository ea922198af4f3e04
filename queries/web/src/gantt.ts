// Schedule Gantt chart on a canvas: one row per machine, one bar per
// operation, coloured per job.
import { jobColor, type GanttLayout } from './shape';

const ROW_H = 22;
const LABEL_W = 90;
const AXIS_H = 22;

export class GanttChart {
  readonly canvas: HTMLCanvasElement;
  private layout: GanttLayout = { rows: [], bars: [], t0: 0, t1: 0 };
  private ro: ResizeObserver;

  constructor(private readonly host: HTMLElement) {
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'gantt';
    host.appendChild(this.canvas);
    this.ro = new ResizeObserver(() => this.draw());
    this.ro.observe(host);
    this.canvas.addEventListener('mousemove', (e) => {
      const bar = this.hit(e.offsetX, e.offsetY);
      this.canvas.title = bar ? `${bar.job_id} op ${bar.operation_index} on ${this.layout.rows[bar.row]}\n${fmtSpan(bar.end - bar.start)}` : '';
    });
  }

  setLayout(l: GanttLayout): void {
    this.layout = l;
    this.draw();
  }

  private scaleX(width: number): (t: number) => number {
    const { t0, t1 } = this.layout;
    const span = Math.max(1, t1 - t0);
    return (t) => LABEL_W + ((t - t0) / span) * (width - LABEL_W - 8);
  }

  private hit(x: number, y: number) {
    const row = Math.floor((y - AXIS_H) / ROW_H);
    const sx = this.scaleX(this.host.clientWidth);
    return this.layout.bars.find((b) => b.row === row && x >= sx(b.start) && x <= sx(b.end)) ?? null;
  }

  draw(): void {
    const w = Math.max(200, this.host.clientWidth);
    const hgt = AXIS_H + Math.max(1, this.layout.rows.length) * ROW_H + 4;
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(hgt * dpr);
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${hgt}px`;
    const g = this.canvas.getContext('2d');
    if (!g) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hgt);
    g.font = '11px system-ui, sans-serif';
    g.textBaseline = 'middle';
    const sx = this.scaleX(w);
    const { t0, t1 } = this.layout;
    // Time axis: up to 6 ticks (fewer when narrow) as offsets from plan start.
    g.strokeStyle = '#1e293b';
    g.fillStyle = '#94a3b8';
    const ticks = Math.max(2, Math.min(6, Math.floor((w - LABEL_W) / 90)));
    for (let i = 0; i <= ticks; i++) {
      const t = t0 + ((t1 - t0) * i) / ticks;
      const x = sx(t);
      g.beginPath();
      g.moveTo(x, AXIS_H - 4);
      g.lineTo(x, hgt);
      g.stroke();
      g.fillText(`+${fmtSpan(t - t0)}`, Math.min(x + 2, w - 40), AXIS_H / 2);
    }
    this.layout.rows.forEach((r, i) => {
      const y = AXIS_H + i * ROW_H;
      if (i % 2 === 0) {
        g.fillStyle = 'rgba(148,163,184,0.05)';
        g.fillRect(0, y, w, ROW_H);
      }
      g.fillStyle = '#cbd5e1';
      g.fillText(r, 6, y + ROW_H / 2, LABEL_W - 10);
    });
    for (const b of this.layout.bars) {
      const x0 = sx(b.start);
      const x1 = Math.max(x0 + 2, sx(b.end));
      const y = AXIS_H + b.row * ROW_H + 3;
      g.fillStyle = jobColor(b.job_id);
      g.fillRect(x0, y, x1 - x0, ROW_H - 6);
      if (x1 - x0 > 34) {
        g.fillStyle = '#0b1220';
        g.fillText(`${b.job_id}`, x0 + 4, y + (ROW_H - 6) / 2, x1 - x0 - 8);
      }
    }
  }
}

export function fmtSpan(ms: number): string {
  const s = ms / 1000;
  if (s < 120) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  if (s < 7200) return `${(s / 60).toFixed(0)}m`;
  return `${(s / 3600).toFixed(1)}h`;
}
