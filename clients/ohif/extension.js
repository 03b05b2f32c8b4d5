// medseg's OHIF extension (OHIF 3.13, loaded at run time from window.config.extensions as an
// ES module: no build). It drives the medseg service from the OHIF viewer:
//   - starts a session on the displayed series (POST /v1/sessions/from-pacs);
//   - sends clicks, boxes and scribbles drawn on the viewport (foreground or background);
//   - paints each answer's mask delta (rle-xor/1, the service's own decoder) into an OHIF
//     labelmap segmentation of that series;
//   - undo / redo, propagation across slices and BIFSeg fine-tuning (jobs, with progress);
//   - saves the segment as a DICOM SEG into the archive (a pacs-push job).
// The panel is plain DOM over the viewer (a React panel needs OHIF's React, which a run-time
// module cannot import); `window.medsegOhif` is the same controller, for scripts and tests.
// Docs: docs/ohif.md.

import { applyDelta } from '/ui/lib/maskcodec.js';

const ID = 'medseg-ohif';
const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

let services = null;
let extensionManager = null;
let appConfig = null;

function apiKey() {
  return sessionStorage.getItem('medseg.apiKey') || '';
}

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error;
  }
}

async function api(method, path, body, headers = {}) {
  const base = appConfig?.medseg?.api || '';
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { ...authHeaders(), ...(body ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function libs() {
  const common = extensionManager.getModuleEntry('@ohif/extension-cornerstone.utilityModule.common');
  return common.exports.getCornerstoneLibraries();
}

// ------------------------------------------------------------------ the panel
const PANEL_CSS = `
#medseg-panel { position: fixed; left: 12px; bottom: 12px; z-index: 1000; width: 250px;
  background: #0b1a42ee; color: #e7edf7; border: 1px solid #3a4d7a; border-radius: 6px;
  font: 12px/1.4 sans-serif; padding: 8px; }
#medseg-panel h3 { margin: 0 0 6px; font-size: 13px; color: #5acce6; }
#medseg-panel button { background: #1f3466; color: #e7edf7; border: 1px solid #3a4d7a;
  border-radius: 4px; padding: 3px 6px; margin: 2px 2px 2px 0; cursor: pointer; font-size: 12px; }
#medseg-panel button[aria-pressed="true"] { background: #5acce6; color: #0b1a42; }
#medseg-panel button:disabled { opacity: .45; cursor: default; }
#medseg-panel .medseg-row { margin: 4px 0; height: auto; display: block; }
#medseg-panel progress { width: 100%; }
#medseg-panel .status { color: #b7c4de; min-height: 2.8em; word-break: break-word; }
#medseg-panel .error { color: #ff8f8f; }
`;

function button(label, action, title) {
  const el = document.createElement('button');
  el.type = 'button';
  el.textContent = label;
  el.dataset.action = action;
  if (title) el.title = title;
  return el;
}

class Controller {
  constructor() {
    this.session = null; // {id, shape, ...}
    this.segment = null; // {id, revision}
    this.mask = null; // Uint8Array(Z*Y*X), the held copy at this.segment.revision
    this.zOfSop = new Map(); // SOP instance UID -> session slice index
    this.segmentationId = null;
    this.labelmapIds = []; // session slice z -> labelmap image id
    this.tool = 'click';
    this.foreground = true;
    this.canUndo = false;
    this.canRedo = false;
    this.busy = false;
    this.panel = null;
    this.log = []; // what the extension did, for scripts and tests
    this.lastError = null;
    this.progressSeen = 0; // progress updates of the last job followed
    this.onPointerDown = this.onPointerDown.bind(this);
  }

  // ---------------------------------------------------------------- lifecycle
  enter() {
    if (this.panel) return;
    const style = document.createElement('style');
    style.id = 'medseg-style';
    style.textContent = PANEL_CSS;
    document.head.appendChild(style);
    const panel = document.createElement('div');
    panel.id = 'medseg-panel';
    panel.innerHTML = '<h3>medseg</h3>';
    const rows = [
      [button('Start session', 'start', 'a medseg session on the displayed series')],
      [button('Click', 'tool-click'), button('Box', 'tool-box', 'BIFSeg box'),
        button('Scribble', 'tool-scribble')],
      [button('Foreground', 'fg'), button('Background', 'bg')],
      [button('Undo', 'undo'), button('Redo', 'redo')],
      [button('Propagate', 'propagate', 'across the slices'),
        button('Fine-tune', 'finetune', 'BIFSeg image-specific fine-tuning (after a box)')],
      [button('Save SEG to PACS', 'save')],
    ];
    for (const items of rows) {
      const row = document.createElement('div');
      row.className = 'medseg-row';
      items.forEach((b) => row.appendChild(b));
      panel.appendChild(row);
    }
    const progress = document.createElement('progress');
    progress.hidden = true;
    progress.max = 1;
    panel.appendChild(progress);
    const status = document.createElement('div');
    status.className = 'status';
    status.setAttribute('role', 'status');
    panel.appendChild(status);
    panel.addEventListener('click', (e) => {
      const action = e.target?.dataset?.action;
      if (action) this.act(action);
    });
    document.body.appendChild(panel);
    this.panel = panel;
    document.addEventListener('pointerdown', this.onPointerDown, true);
    this.say('Open a series, then Start session.');
    this.refresh();
  }

  exit() {
    document.removeEventListener('pointerdown', this.onPointerDown, true);
    this.panel?.remove();
    document.getElementById('medseg-style')?.remove();
    this.panel = null;
  }

  say(message, error = false) {
    if (error) this.lastError = message;
    const status = this.panel?.querySelector('.status');
    if (status) {
      status.textContent = message;
      status.classList.toggle('error', error);
    }
  }

  progress(fraction) {
    const bar = this.panel?.querySelector('progress');
    if (!bar) return;
    bar.hidden = fraction === null;
    if (fraction !== null) bar.value = fraction;
  }

  refresh() {
    if (!this.panel) return;
    const has = Boolean(this.segment);
    const set = (action, enabled, pressed) => {
      const b = this.panel.querySelector(`[data-action="${action}"]`);
      b.disabled = !enabled || this.busy;
      if (pressed !== undefined) b.setAttribute('aria-pressed', String(pressed));
    };
    set('start', true);
    for (const t of ['click', 'box', 'scribble']) set(`tool-${t}`, has, this.tool === t);
    set('fg', has, this.foreground);
    set('bg', has, !this.foreground);
    set('undo', has && this.canUndo);
    set('redo', has && this.canRedo);
    set('propagate', has);
    set('finetune', has);
    set('save', has);
  }

  async act(action) {
    if (action.startsWith('tool-')) { this.tool = action.slice(5); this.refresh(); return; }
    if (action === 'fg' || action === 'bg') { this.foreground = action === 'fg'; this.refresh(); return; }
    const run = { start: () => this.start(), undo: () => this.change('undo'), redo: () => this.change('redo'),
      propagate: () => this.propagate(), finetune: () => this.finetune(), save: () => this.save() }[action];
    if (!run || this.busy) return;
    this.busy = true;
    this.refresh();
    try {
      await run();
    } catch (err) {
      this.say(`${action}: ${err.message}`, true);
    } finally {
      this.busy = false;
      this.progress(null);
      this.refresh();
    }
  }

  // ---------------------------------------------------------------- the displayed series
  activeViewport() {
    const { viewportGridService, cornerstoneViewportService, displaySetService } = services;
    const viewportId = viewportGridService.getActiveViewportId();
    const [uid] = viewportGridService.getDisplaySetsUIDsForViewport(viewportId) || [];
    const displaySet = uid ? displaySetService.getDisplaySetByUID(uid) : null;
    const viewport = cornerstoneViewportService.getCornerstoneViewport(viewportId);
    return { viewportId, displaySet, viewport };
  }

  async start() {
    const { viewportId, displaySet } = this.activeViewport();
    if (!displaySet?.imageIds?.length) throw new Error('no image series in the active viewport');
    if (displaySet.Modality === 'SEG') throw new Error('the active viewport shows a SEG: open the image series');
    this.say('Pulling the series into a session...');
    const session = await api('POST', '/v1/sessions/from-pacs', {
      pacs: appConfig.medseg.pacs, study_uid: displaySet.StudyInstanceUID,
      series_uid: displaySet.SeriesInstanceUID, name: displaySet.SeriesDescription || undefined,
    });
    const dicom = await api('GET', `/v1/sessions/${session.id}/dicom`);
    this.zOfSop = new Map(dicom.source.sop_instance_uids.map((uid, z) => [uid, z]));
    const segment = await api('POST', `/v1/sessions/${session.id}/segments`, { name: 'medseg' });
    this.session = session;
    this.segment = { id: segment.id, revision: segment.revision ?? 0 };
    this.mask = new Uint8Array(session.shape[0] * session.shape[1] * session.shape[2]);
    await this.makeSegmentation(viewportId, displaySet);
    this.canUndo = false;
    this.canRedo = false;
    this.log.push({ action: 'start', session: session.id, segment: segment.id });
    this.say(`Session ${session.id.slice(0, 8)}: ${session.shape.join(' x ')} voxels. ` +
      'Click on the organ.');
  }

  async makeSegmentation(viewportId, displaySet) {
    const { segmentationService } = services;
    const { cornerstone } = libs();
    const segmentationId = `medseg-${this.session.id}`;
    await segmentationService.createLabelmapForDisplaySet(displaySet, {
      segmentationId, label: 'medseg',
      segments: { 1: { label: 'medseg', active: true } },
    });
    await segmentationService.addSegmentationRepresentation(viewportId, { segmentationId });
    const segmentation = segmentationService.getSegmentation(segmentationId);
    const data = segmentation.representationData.Labelmap;
    const labelmaps = data.imageIds;
    const references = data.referencedImageIds || displaySet.imageIds;
    this.labelmapIds = new Array(this.session.shape[0]).fill(null);
    references.forEach((imageId, i) => {
      const sop = cornerstone.metaData.get('instance', imageId)?.SOPInstanceUID;
      const z = this.zOfSop.get(sop);
      if (z !== undefined) this.labelmapIds[z] = labelmaps[i];
    });
    const missing = this.labelmapIds.filter((id) => id === null).length;
    if (missing) throw new Error(`${missing} session slices have no image in the viewer`);
    this.segmentationId = segmentationId;
  }

  // ---------------------------------------------------------------- painting
  paint(bbox) {
    if (!bbox) return;
    const { cornerstone, cornerstoneTools } = libs();
    const [, Y, X] = this.session.shape;
    const [z0, y0, x0, z1, y1, x1] = bbox;
    for (let z = z0; z < z1; z++) {
      const image = cornerstone.cache.getImage(this.labelmapIds[z]);
      if (!image) continue;
      const pixels = image.voxelManager ? image.voxelManager.getScalarData() : image.getPixelData();
      for (let y = y0; y < y1; y++) {
        for (let x = x0; x < x1; x++) pixels[y * X + x] = this.mask[(z * Y + y) * X + x];
      }
    }
    const segmentation = cornerstoneTools.segmentation.state.getSegmentation(this.segmentationId);
    const volumeId = segmentation?.representationData?.Labelmap?.volumeId;
    const volume = volumeId ? cornerstone.cache.getVolume(volumeId) : null;
    if (volume?.voxelManager) { // the viewer made a volume of the labelmap: write there too
      const slices = volume.imageIds || [];
      for (let k = 0; k < slices.length; k++) {
        const z = this.labelmapIds.indexOf(slices[k]);
        if (z < z0 || z >= z1) continue;
        for (let y = y0; y < y1; y++) {
          for (let x = x0; x < x1; x++) volume.voxelManager.setAtIJK(x, y, k, this.mask[(z * Y + y) * X + x]);
        }
      }
    }
    cornerstoneTools.segmentation.triggerSegmentationEvents.triggerSegmentationDataModified(this.segmentationId);
  }

  /** Voxels of the held mask (for checks). */
  count() {
    let n = 0;
    for (let i = 0; i < this.mask.length; i++) n += this.mask[i];
    return n;
  }

  applyChange(result, what) {
    applyDelta(this.mask, this.session.shape, result.delta);
    this.segment.revision = result.revision;
    this.canUndo = result.can_undo;
    this.canRedo = result.can_redo;
    this.paint(result.delta.bbox);
    this.log.push({ action: what, revision: result.revision, changed: result.delta.changed_voxels });
    this.say(`${what}: revision ${result.revision}, ${result.delta.changed_voxels} voxels changed ` +
      `(${this.count()} in the segment).`);
  }

  async catchUp(what) {
    const delta = await api('GET', `${this.segmentPath()}/delta?from=${this.segment.revision}`);
    applyDelta(this.mask, this.session.shape, delta);
    this.segment.revision = delta.to_revision;
    this.canUndo = true;
    this.canRedo = false;
    this.paint(delta.bbox);
    this.log.push({ action: what, revision: delta.to_revision, changed: delta.changed_voxels });
    this.say(`${what}: revision ${delta.to_revision}, ${delta.changed_voxels} voxels changed ` +
      `(${this.count()} in the segment).`);
  }

  segmentPath() {
    return `/v1/sessions/${this.session.id}/segments/${this.segment.id}`;
  }

  // ---------------------------------------------------------------- navigation
  /** Shows session slice z in the active viewport. */
  async show(z) {
    const sop = [...this.zOfSop].find(([, k]) => k === z)?.[0];
    if (!sop) throw new Error(`no slice ${z} in the session`);
    return this.showInstance(sop);
  }

  /** Shows the image of that SOP instance UID in the active (stack) viewport. */
  async showInstance(sopInstanceUid) {
    const { viewport } = this.activeViewport();
    const { cornerstone } = libs();
    const ids = viewport.getImageIds();
    const index = ids.findIndex((id) => cornerstone.metaData.get('instance', id)?.SOPInstanceUID === sopInstanceUid);
    if (index < 0) throw new Error(`instance ${sopInstanceUid} is not in the viewport`);
    await viewport.setImageIdIndex(index);
    viewport.render();
  }

  /** Page coordinates of voxel [z, y, x] on the shown slice (for scripts and tests). */
  pagePoint(y, x) {
    const { viewport } = this.activeViewport();
    const { cornerstone } = libs();
    const world = cornerstone.utilities.imageToWorldCoords(viewport.getCurrentImageId(), [x, y]);
    const [cx, cy] = viewport.worldToCanvas(world);
    const rect = viewport.element.getBoundingClientRect();
    return [rect.left + cx, rect.top + cy];
  }

  /** Painted voxels of the OHIF labelmap per session slice. */
  paintedPerSlice() {
    const { cornerstone } = libs();
    return this.labelmapIds.map((id) => {
      const image = cornerstone.cache.getImage(id);
      const pixels = image.voxelManager ? image.voxelManager.getScalarData() : image.getPixelData();
      let n = 0;
      for (let i = 0; i < pixels.length; i++) n += pixels[i] ? 1 : 0;
      return n;
    });
  }

  /** Painted voxels per source SOP instance UID of any labelmap segmentation OHIF holds
   * (e.g. one OHIF made from a DICOM SEG), for scripts and tests. */
  labelmapPerInstance(segmentationId) {
    const { cornerstone, cornerstoneTools } = libs();
    const segmentation = cornerstoneTools.segmentation.state.getSegmentation(segmentationId);
    const out = {};
    for (const id of segmentation?.representationData?.Labelmap?.imageIds || []) {
      const image = cornerstone.cache.getImage(id);
      if (!image) continue;
      const sop = cornerstone.metaData.get('instance', image.referencedImageId)?.SOPInstanceUID;
      const pixels = image.voxelManager ? image.voxelManager.getScalarData() : image.getPixelData();
      let n = 0;
      for (let i = 0; i < pixels.length; i++) n += pixels[i] ? 1 : 0;
      out[sop] = (out[sop] || 0) + n;
    }
    return out;
  }

  // ---------------------------------------------------------------- prompts
  /** Image point [z, row, col] under a pointer event, or null outside the series. */
  voxelAt(event) {
    const { viewport } = this.activeViewport();
    if (!viewport || !viewport.element.contains(event.target)) return null;
    const { cornerstone } = libs();
    const rect = viewport.element.getBoundingClientRect();
    const world = viewport.canvasToWorld([event.clientX - rect.left, event.clientY - rect.top]);
    const imageId = viewport.getCurrentImageId();
    const sop = cornerstone.metaData.get('instance', imageId)?.SOPInstanceUID;
    const z = this.zOfSop.get(sop);
    if (z === undefined) return null;
    const [col, row] = cornerstone.utilities.worldToImageCoords(imageId, world);
    const [, Y, X] = this.session.shape;
    const y = Math.round(row);
    const x = Math.round(col);
    if (y < 0 || x < 0 || y >= Y || x >= X) return [z, null, null];
    return [z, y, x];
  }

  onPointerDown(event) {
    if (!this.segment || this.busy || event.button !== 0) return;
    const start = this.voxelAt(event);
    if (!start) return; // not on the viewport: OHIF handles it
    // ours: the viewer's own tools do not see this gesture
    event.stopPropagation();
    event.preventDefault();
    if (start[1] === null) { this.say('That point is outside the image.', true); return; }
    const points = [start];
    const move = (e) => {
      e.stopPropagation();
      const p = this.voxelAt(e);
      if (p && p[1] !== null && p[0] === start[0]) points.push(p);
    };
    const up = (e) => {
      e.stopPropagation();
      document.removeEventListener('pointermove', move, true);
      document.removeEventListener('pointerup', up, true);
      this.gesture(points);
    };
    document.addEventListener('pointermove', move, true);
    document.addEventListener('pointerup', up, true);
  }

  gesture(points) {
    const [z] = points[0];
    const plane = { axis: 'z', index: z };
    const fg = this.foreground;
    let body;
    if (this.tool === 'box') {
      const ys = points.map((p) => p[1]);
      const xs = points.map((p) => p[2]);
      body = { type: 'box', method: 'bifseg', dim: '2d', plane,
        box: { lo: [z, Math.min(...ys), Math.min(...xs)], hi: [z, Math.max(...ys), Math.max(...xs)] } };
    } else if (this.tool === 'scribble' && points.length > 1) {
      body = { type: 'scribble', dim: '2d', plane, scribbles: [{ path: thin(points), foreground: fg }] };
    } else {
      body = { type: 'click', dim: '2d', plane, clicks: [{ zyx: points[0], foreground: fg }] };
    }
    return this.interact(body);
  }

  /** Sends one interaction (a click, box or scribble body of the API) and paints the answer. */
  async interact(body) {
    if (this.busy) throw new Error('busy');
    this.busy = true;
    this.refresh();
    try {
      const result = await api('POST', `${this.segmentPath()}/interactions`,
        { ...body, base_revision: this.segment.revision });
      this.applyChange(result, body.type);
      this.log.at(-1).request = body;
      return result;
    } catch (err) {
      this.say(`${body.type}: ${err.message}`, true);
      throw err;
    } finally {
      this.busy = false;
      this.refresh();
    }
  }

  async change(which) {
    const result = await api('POST', `${this.segmentPath()}/${which}`, null,
      { 'If-Match': `"${this.segment.revision}"` });
    this.applyChange(result, which);
  }

  // ---------------------------------------------------------------- jobs
  async follow(job, what) {
    this.progressSeen = 0;
    for (;;) {
      if (job.state === 'running' || job.progress?.step) this.progressSeen += 1;
      const total = job.progress?.total;
      this.progress(total ? job.progress.step / total : 0);
      const queue = job.queue && job.state === 'queued' ? ` (queued, ${job.queue.ahead ?? 0} ahead)` : '';
      this.say(`${what}: ${job.progress?.message || job.state}${queue}`);
      if (FINAL.has(job.state)) break;
      await new Promise((resolve) => setTimeout(resolve, 400));
      job = await api('GET', `/v1/jobs/${job.id}`);
    }
    if (job.state !== 'succeeded') {
      throw new Error(job.error ? `${job.error.code}: ${job.error.message}` : job.state);
    }
    return job;
  }

  async propagate() {
    const job = await api('POST', `${this.segmentPath()}/propagate`,
      { axis: 'z', base_revision: this.segment.revision });
    await this.follow(job, 'propagate');
    await this.catchUp('propagate');
  }

  async finetune() {
    const job = await api('POST', `${this.segmentPath()}/finetune`,
      { mode: 'unsupervised', base_revision: this.segment.revision });
    await this.follow(job, 'fine-tune');
    await this.catchUp('fine-tune');
  }

  async save(form = 'binary') {
    const job = await api('POST', `/v1/sessions/${this.session.id}/push`, { form });
    const done = await this.follow(job, 'save');
    const uid = done.result.sop_instance_uid;
    this.log.push({ action: 'save', sop_instance_uid: uid, series_instance_uid: done.result.series_instance_uid });
    this.say(`Saved: DICOM SEG ${uid} in ${appConfig.medseg.pacs}` +
      (done.result.stored.length ? '' : ' (already there)'));
    return done.result;
  }
}

function thin(points) {
  const out = [points[0]];
  for (const p of points.slice(1)) {
    const q = out[out.length - 1];
    if (p[1] !== q[1] || p[2] !== q[2]) out.push(p);
  }
  return out.slice(0, 500);
}

export const controller = new Controller();

export default {
  id: ID,
  version: '0.1.0',
  preRegistration({ servicesManager, extensionManager: manager, appConfig: config }) {
    services = servicesManager.services;
    extensionManager = manager;
    appConfig = config;
    // the archive is read through this service's proxy, which wants the same API key
    services.userAuthenticationService.setServiceImplementation({
      getAuthorizationHeader: () => authHeaders(),
    });
    window.medsegOhif = controller;
  },
  getCommandsModule() {
    const definitions = {};
    for (const action of ['start', 'undo', 'redo', 'propagate', 'finetune', 'save']) {
      definitions[`medseg.${action}`] = { commandFn: () => controller.act(action) };
    }
    return { definitions, defaultContext: 'VIEWER' };
  },
};
