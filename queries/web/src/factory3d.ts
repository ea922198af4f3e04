// three.js factory floor: machines laid out on a grid as one InstancedMesh
// (one draw call for any number of machines), coloured by status, with CSS2D
// health labels, instanced defect-alert markers, OrbitControls and raycast
// picking.
import {
  AmbientLight,
  BoxGeometry,
  Color,
  ConeGeometry,
  DirectionalLight,
  DynamicDrawUsage,
  GridHelper,
  InstancedMesh,
  Matrix4,
  Mesh,
  MeshBasicMaterial,
  MeshLambertMaterial,
  OrthographicCamera,
  PerspectiveCamera,
  PlaneGeometry,
  Raycaster,
  Scene,
  Vector2,
  Vector3,
  WebGLRenderer,
  WebGLRenderTarget,
} from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
import { CSS2DObject, CSS2DRenderer } from 'three/addons/renderers/CSS2DRenderer.js';
import { FpsMeter } from './fps';
import { DefectTracker, gridLayout, sortMachines } from './shape';
import { statusColor, statusColorHex } from './status';
import type { Machine } from './types';

const SPACING = 3;
const BOX_W = 1.8;
const BOX_H = 1.2;
const MARKER_LAYER = 1;

export interface MachineView {
  status: string;
  color: string;
  health: number;
  defects: number;
  alert: boolean;
}

function srgbByte(linear: number): number {
  const c = linear / 255;
  const s = c <= 0.0031308 ? c * 12.92 : 1.055 * Math.pow(c, 1 / 2.4) - 0.055;
  return Math.round(Math.max(0, Math.min(1, s)) * 255);
}

/**
 * Name of the WebGL renderer behind a throwaway context, or '' when hidden.
 * Software rasterisers (SwiftShader, llvmpipe) pay per pixel, so the scene
 * turns MSAA off and caps the pixel ratio there.
 */
export function glRendererName(): string {
  try {
    const gl = document.createElement('canvas').getContext('webgl2') ?? document.createElement('canvas').getContext('webgl');
    if (!gl) return '';
    const ext = gl.getExtension('WEBGL_debug_renderer_info');
    const name = String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER) ?? '');
    gl.getExtension('WEBGL_lose_context')?.loseContext();
    return name;
  } catch {
    return '';
  }
}

export function isSoftwareGl(name: string): boolean {
  return /swiftshader|llvmpipe|softpipe|software|basic render/i.test(name);
}

export class FactoryScene {
  readonly renderer: WebGLRenderer;
  private labels: CSS2DRenderer;
  private scene = new Scene();
  private camera: PerspectiveCamera;
  private controls: OrbitControls;
  private boxGeo = new BoxGeometry(BOX_W, BOX_H, BOX_W);
  private boxMat = new MeshLambertMaterial({ color: 0xffffff });
  private markerGeo = new ConeGeometry(0.25, 0.55, 10);
  private markerMat = new MeshBasicMaterial({ color: 0xff3b30 });
  private boxes: InstancedMesh;
  private markers: InstancedMesh;
  private floor: Mesh;
  private grid: GridHelper | null = null;
  private ids: string[] = [];
  private index = new Map<string, number>();
  private labelObjs = new Map<string, { obj: CSS2DObject; text: string }>();
  private positions: [number, number][] = [];
  private alerting: number[] = [];
  // A defect marker stays up for 15 s after the count last rose.
  private tracker = new DefectTracker(15_000);
  private fpsMeter = new FpsMeter();
  private tmpM = new Matrix4();
  private tmpC = new Color();
  private raf = 0;
  private extent = 0;
  readonly views: Record<string, MachineView> = {};
  readonly glName: string;
  onPick: (id: string) => void = () => {};

  constructor(
    private readonly host: HTMLElement,
    opts: { antialias?: boolean } = {},
  ) {
    this.glName = glRendererName();
    const soft = isSoftwareGl(this.glName);
    this.renderer = new WebGLRenderer({ antialias: opts.antialias ?? !soft, powerPreference: 'high-performance' });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, soft ? 1 : 2));
    this.renderer.setClearColor(0x0b1220);
    host.appendChild(this.renderer.domElement);
    this.labels = new CSS2DRenderer();
    this.labels.domElement.className = 'labels';
    host.appendChild(this.labels.domElement);

    this.camera = new PerspectiveCamera(50, 1, 0.1, 2000);
    this.camera.position.set(18, 22, 26);
    this.camera.layers.enable(MARKER_LAYER);
    this.controls = new OrbitControls(this.camera, this.labels.domElement);
    this.controls.enableDamping = true;
    this.controls.maxPolarAngle = Math.PI / 2.05;
    this.controls.screenSpacePanning = true;

    this.scene.add(new AmbientLight(0xffffff, 1.4));
    const sun = new DirectionalLight(0xffffff, 2.2);
    sun.position.set(10, 30, 15);
    this.scene.add(sun);

    this.floor = new Mesh(new PlaneGeometry(1, 1), new MeshLambertMaterial({ color: 0x1e293b }));
    this.floor.rotation.x = -Math.PI / 2;
    this.scene.add(this.floor);

    this.boxes = this.makeBoxes(64);
    this.markers = this.makeMarkers(64);

    this.installPicking();
    new ResizeObserver(() => this.resize()).observe(host);
    this.resize();
    this.loop(performance.now());
  }

  private makeBoxes(capacity: number): InstancedMesh {
    const m = new InstancedMesh(this.boxGeo, this.boxMat, capacity);
    m.instanceMatrix.setUsage(DynamicDrawUsage);
    m.count = 0;
    // Instances move when the layout changes; bounds are recomputed then, not per frame.
    m.frustumCulled = false;
    m.setColorAt(0, this.tmpC.set(0xffffff));
    this.scene.add(m);
    return m;
  }

  private makeMarkers(capacity: number): InstancedMesh {
    const m = new InstancedMesh(this.markerGeo, this.markerMat, capacity);
    m.instanceMatrix.setUsage(DynamicDrawUsage);
    m.count = 0;
    m.frustumCulled = false;
    m.layers.set(MARKER_LAYER);
    this.scene.add(m);
    return m;
  }

  private ensureCapacity(n: number): void {
    if (n <= this.boxes.instanceMatrix.count) return;
    let cap = this.boxes.instanceMatrix.count;
    while (cap < n) cap *= 2;
    for (const old of [this.boxes, this.markers]) {
      this.scene.remove(old);
      old.dispose();
    }
    this.boxes = this.makeBoxes(cap);
    this.markers = this.makeMarkers(cap);
  }

  /** Apply a full machine list (state push or demo tick). */
  update(machines: readonly Machine[], nowMs: number = Date.now()): void {
    const sorted = sortMachines(machines);
    const ids = sorted.map((m) => m.machine_id);
    const relayout = ids.length !== this.ids.length || ids.some((id, i) => id !== this.ids[i]);
    if (relayout) this.layout(ids);
    this.tracker.update(sorted, nowMs);
    sorted.forEach((m, i) => {
      this.boxes.setColorAt(i, this.tmpC.setHex(statusColor(m.status)));
      const alert = this.tracker.alerting(m.machine_id, nowMs);
      this.views[m.machine_id] = { status: m.status, color: statusColorHex(m.status), health: m.health_score, defects: m.defects, alert };
      const pct = Math.round(Math.max(0, Math.min(1, m.health_score)) * 100);
      const l = this.labelObjs.get(m.machine_id);
      // Big fleets get health-only labels (ids are in the hover tooltip) so they stay readable.
      const text = sorted.length > 48 ? `${pct}%` : `${m.machine_id} · ${pct}%`;
      const key = `${text}|${alert ? 1 : 0}`;
      if (l && l.text !== key) {
        l.text = key;
        l.obj.element.textContent = text;
        l.obj.element.className = `mlabel${pct < 40 ? ' bad' : pct < 70 ? ' warn' : ''}${alert ? ' alert' : ''}`;
      }
    });
    for (const id of Object.keys(this.views)) if (!this.index.has(id)) delete this.views[id];
    if (this.boxes.instanceColor) this.boxes.instanceColor.needsUpdate = true;
    this.alerting = sorted.map((m, i) => (this.tracker.alerting(m.machine_id, nowMs) ? i : -1)).filter((i) => i >= 0);
  }

  private layout(ids: string[]): void {
    this.ensureCapacity(ids.length);
    this.ids = ids;
    this.index = new Map(ids.map((id, i) => [id, i]));
    this.positions = gridLayout(ids.length, SPACING);
    this.positions.forEach(([x, z], i) => {
      this.tmpM.makeTranslation(x, BOX_H / 2, z);
      this.boxes.setMatrixAt(i, this.tmpM);
    });
    this.boxes.count = ids.length;
    this.labelsDirty = true;
    this.boxes.instanceMatrix.needsUpdate = true;
    this.boxes.computeBoundingSphere();
    for (const [id, l] of this.labelObjs) {
      if (!this.index.has(id)) {
        this.scene.remove(l.obj);
        l.obj.element.remove();
        this.labelObjs.delete(id);
      }
    }
    ids.forEach((id, i) => {
      let l = this.labelObjs.get(id);
      if (!l) {
        const el = document.createElement('div');
        el.className = 'mlabel';
        el.dataset.id = id;
        l = { obj: new CSS2DObject(el), text: '' };
        this.labelObjs.set(id, l);
        this.scene.add(l.obj);
      }
      const [x, z] = this.positions[i];
      l.obj.position.set(x, BOX_H + 0.35, z);
    });
    const xs = this.positions.map((p) => Math.abs(p[0]));
    const zs = this.positions.map((p) => Math.abs(p[1]));
    const extent = Math.max(4, ...xs, ...zs) + SPACING;
    this.floor.scale.set(extent * 2, extent * 2, 1);
    if (this.grid) {
      this.scene.remove(this.grid);
      this.grid.dispose();
    }
    const div = Math.max(2, Math.round((extent * 2) / SPACING));
    this.grid = new GridHelper(extent * 2, div, 0x334155, 0x263244);
    this.grid.position.y = 0.01;
    this.scene.add(this.grid);
    if (Math.abs(extent - this.extent) > 0.5) {
      this.extent = extent;
      this.frame(extent);
    }
  }

  /** Fit the whole grid in view: distance from the bounding radius and the narrower of the two fields of view. */
  private frame(extent: number): void {
    const radius = Math.max(3, (extent - SPACING / 2) * Math.SQRT2);
    const vfov = (this.camera.fov * Math.PI) / 180;
    const hfov = 2 * Math.atan(Math.tan(vfov / 2) * this.camera.aspect);
    const dist = (radius / Math.sin(Math.min(vfov, hfov) / 2)) * 0.95;
    const dir = new Vector3(0.45, 0.85, 0.8).normalize();
    this.camera.position.copy(dir.multiplyScalar(dist));
    this.camera.far = dist * 10;
    this.camera.updateProjectionMatrix();
    this.controls.target.set(0, 0, 0);
    this.controls.maxDistance = dist * 4;
    this.controls.update();
  }

  private installPicking(): void {
    const ray = new Raycaster();
    const ndc = new Vector2();
    let down: { x: number; y: number } | null = null;
    const el = this.labels.domElement;
    el.addEventListener('pointerdown', (e) => {
      down = { x: e.clientX, y: e.clientY };
    });
    el.addEventListener('pointerup', (e) => {
      // A drag (orbit/pan) is not a click.
      if (!down || Math.hypot(e.clientX - down.x, e.clientY - down.y) > 5) return;
      const id = this.pickAt(e.clientX, e.clientY, ray, ndc);
      if (id) this.onPick(id);
    });
    const tip = document.createElement('div');
    tip.className = 'tip';
    tip.hidden = true;
    this.host.appendChild(tip);
    el.addEventListener('pointermove', (e) => {
      if (e.buttons) return;
      const id = this.pickAt(e.clientX, e.clientY, ray, ndc);
      el.style.cursor = id ? 'pointer' : '';
      tip.hidden = !id;
      if (!id) return;
      const v = this.views[id];
      tip.textContent = v ? `${id} · ${v.status} · health ${Math.round(v.health * 100)}% · defects ${v.defects}` : id;
      const r = this.host.getBoundingClientRect();
      tip.style.left = `${e.clientX - r.left + 14}px`;
      tip.style.top = `${e.clientY - r.top + 14}px`;
    });
    el.addEventListener('pointerleave', () => {
      tip.hidden = true;
    });
  }

  /** Machine under a viewport point, or null. */
  pickAt(clientX: number, clientY: number, ray = new Raycaster(), ndc = new Vector2()): string | null {
    const r = this.renderer.domElement.getBoundingClientRect();
    ndc.set(((clientX - r.left) / r.width) * 2 - 1, -((clientY - r.top) / r.height) * 2 + 1);
    ray.setFromCamera(ndc, this.camera);
    ray.layers.set(0);
    const hit = ray.intersectObject(this.boxes, false)[0];
    return hit?.instanceId !== undefined ? (this.ids[hit.instanceId] ?? null) : null;
  }

  /** Viewport coordinates of a machine's top centre (for tests that click it). */
  screenPoint(id: string): { x: number; y: number } | null {
    const i = this.index.get(id);
    if (i === undefined) return null;
    const [x, z] = this.positions[i];
    const v = new Vector3(x, BOX_H, z).project(this.camera);
    const r = this.renderer.domElement.getBoundingClientRect();
    return { x: r.left + ((v.x + 1) / 2) * r.width, y: r.top + ((1 - v.y) / 2) * r.height };
  }

  /**
   * Render the machine's top face from straight above into a tiny target and
   * read the shaded pixel back (sRGB bytes): proves the GPU draws the colour
   * the state says, independent of camera angle or occluding neighbours.
   */
  sampleColor(id: string): [number, number, number] | null {
    const i = this.index.get(id);
    if (i === undefined) return null;
    const [x, z] = this.positions[i];
    const cam = new OrthographicCamera(-0.2, 0.2, 0.2, -0.2, 0.1, 100);
    cam.position.set(x, 50, z);
    cam.up.set(0, 0, -1);
    cam.lookAt(x, 0, z);
    cam.layers.set(0);
    const rt = new WebGLRenderTarget(4, 4);
    const buf = new Uint8Array(4 * 4 * 4);
    try {
      this.renderer.setRenderTarget(rt);
      this.renderer.render(this.scene, cam);
      this.renderer.readRenderTargetPixels(rt, 0, 0, 4, 4, buf);
    } finally {
      this.renderer.setRenderTarget(null);
      rt.dispose();
    }
    const o = (1 * 4 + 1) * 4;
    return [srgbByte(buf[o]), srgbByte(buf[o + 1]), srgbByte(buf[o + 2])];
  }

  /** Defect-alert markers currently drawn. */
  markerCount(): number {
    return this.alerting.length;
  }

  /** Camera position and orbit target (for tests of orbit, zoom and pan). */
  cameraState(): { position: [number, number, number]; target: [number, number, number] } {
    const p = this.camera.position;
    const t = this.controls.target;
    return { position: [p.x, p.y, p.z], target: [t.x, t.y, t.z] };
  }

  fps(): number {
    return this.fpsMeter.fps(performance.now());
  }

  get drawCalls(): number {
    return this.renderer.info.render.calls;
  }

  private resize(): void {
    const w = Math.max(1, this.host.clientWidth);
    const hgt = Math.max(1, this.host.clientHeight);
    this.renderer.setSize(w, hgt);
    this.labels.setSize(w, hgt);
    this.labelsDirty = true;
    this.camera.aspect = w / hgt;
    this.camera.updateProjectionMatrix();
  }

  private loop = (now: number): void => {
    this.raf = requestAnimationFrame(this.loop);
    this.fpsMeter.tick(now);
    this.controls.update();
    // Bobbing alert markers: only the alerting instances are written.
    const bob = Math.sin(now / 250) * 0.15;
    this.alerting.forEach((idx, k) => {
      const [x, z] = this.positions[idx] ?? [0, 0];
      this.tmpM.makeRotationX(Math.PI).setPosition(x + BOX_W / 2, BOX_H + 1.1 + bob, z);
      this.markers.setMatrixAt(k, this.tmpM);
    });
    this.markers.count = this.alerting.length;
    if (this.alerting.length) this.markers.instanceMatrix.needsUpdate = true;
    const t0 = performance.now();
    this.renderer.render(this.scene, this.camera);
    const t1 = performance.now();
    // Labels only move when the camera or the layout changes; re-projecting
    // 200 DOM nodes every frame was the largest per-frame cost.
    if (this.labelsDirty || !this.camera.matrixWorld.equals(this.lastCam) || !this.camera.projectionMatrix.equals(this.lastProj)) {
      this.labels.render(this.scene, this.camera);
      this.lastCam.copy(this.camera.matrixWorld);
      this.lastProj.copy(this.camera.projectionMatrix);
      this.labelsDirty = false;
    }
    const t2 = performance.now();
    // Exponential moving averages, exposed to tests to tell GPU from DOM cost.
    this.glMs = this.glMs * 0.9 + (t1 - t0) * 0.1;
    this.labelMs = this.labelMs * 0.9 + (t2 - t1) * 0.1;
  };
  glMs = 0;
  labelMs = 0;
  private labelsDirty = true;
  private lastCam = new Matrix4();
  private lastProj = new Matrix4();

  dispose(): void {
    cancelAnimationFrame(this.raf);
    this.controls.dispose();
    this.renderer.dispose();
  }
}
