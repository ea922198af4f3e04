// uPlot line charts that follow their container's width (ResizeObserver).
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface SeriesDef {
  label: string;
  color: string;
  /** Format of values on the axis and legend. */
  fmt?: (v: number) => string;
  dash?: number[];
}

export class LineChart {
  private plot: uPlot;
  private ro: ResizeObserver;

  constructor(
    private readonly el: HTMLElement,
    series: SeriesDef[],
    height = 220,
  ) {
    const fmt = series[0]?.fmt ?? ((v: number) => String(v));
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      scales: { x: { time: true } },
      axes: [
        { stroke: '#94a3b8', grid: { stroke: '#1e293b' }, ticks: { stroke: '#334155' } },
        { stroke: '#94a3b8', grid: { stroke: '#1e293b' }, ticks: { stroke: '#334155' }, size: 60, values: (_u, vals) => vals.map((v) => (v === null ? '' : fmt(v))) },
      ],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          dash: s.dash,
          spanGaps: true,
          points: { show: false },
          value: (_u: uPlot, v: number | null) => (v === null ? '—' : (s.fmt ?? String)(v)),
        })),
      ],
    };
    this.plot = new uPlot(opts, [[], ...series.map(() => [])] as uPlot.AlignedData, el);
    this.ro = new ResizeObserver(() => {
      const w = Math.max(200, this.el.clientWidth);
      if (Math.abs(w - this.plot.width) > 1) this.plot.setSize({ width: w, height });
    });
    this.ro.observe(el);
  }

  setData(data: uPlot.AlignedData): void {
    this.plot.setData(data);
  }

  destroy(): void {
    this.ro.disconnect();
    this.plot.destroy();
  }
}
