// A 3D rendering of the segments with NiiVue (@niivue/niivue, WebGL2; BSD-2-Clause): the masks
// this tab holds, as one label volume in the session's geometry (the NIfTI the lost-session
// screen saves), volume-rendered in each segment's colour; drag to rotate. Opened with the
// toolbar's "3D view" button or the 4 key. NiiVue is large (2.3 MB) and not part of the
// repository: `make niivue` fetches it once from npm into clients/web/vendor/ (git-ignored),
// and the viewer loads it only when the panel is first opened.

import { labelMap, niftiBytes } from '../nifti.js';

const SCRIPT = 'vendor/niivue.umd.js';
let loading = null;

/** window.niivue, loading the UMD file on first use; rejects with a clear message if missing. */
function loadNiivue() {
  if (window.niivue) return Promise.resolve(window.niivue);
  loading ??= new Promise((resolve, reject) => {
    const script = Object.assign(document.createElement('script'), { src: SCRIPT });
    script.onload = () => resolve(window.niivue);
    script.onerror = () => {
      loading = null;
      reject(new Error(`${SCRIPT} is missing: run \`make niivue\` once (it fetches NiiVue from npm)`));
    };
    document.head.append(script);
  });
  return loading;
}

/** NiiVue's label colour table for the visible segments: label value -> colour. */
function colourTable(segments) {
  const table = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: [''] };
  for (const s of segments) {
    table.R.push(parseInt(s.color.slice(1, 3), 16));
    table.G.push(parseInt(s.color.slice(3, 5), 16));
    table.B.push(parseInt(s.color.slice(5, 7), 16));
    table.A.push(255);
    table.I.push(s.label);
    table.labels.push(s.name);
  }
  return table;
}

export function mountRender3d(app, el) {
  el.innerHTML = `<div class="render3d-head"><b>3D</b> <span class="hint state">segments (drag to rotate)</span>
      <button class="close" title="close the 3D view (4)">✕</button></div>
    <canvas class="render3d-canvas" width="320" height="320"></canvas>`;
  const $ = (s) => el.querySelector(s);
  const { session } = app;
  let nv = null;
  let timer = 0;
  let shown = ''; // what the rendering shows: "segment@revision,..." (skip same redraws)
  el.dataset.rendered = '0';

  async function ensure() {
    if (nv) return nv;
    const niivue = await loadNiivue();
    nv = new niivue.Niivue({ backColor: [0.08, 0.08, 0.1, 1], show3Dcrosshair: false,
      isResizeCanvas: false, logLevel: 'error' });
    await nv.attachToCanvas($('.render3d-canvas'));
    nv.setSliceType(nv.sliceTypeRender);
    el.niivue = nv; // for the console and the tests
    return nv;
  }

  async function render() {
    if (el.hidden || !session.record) return;
    const segments = session.segments.filter((s) => s.visible && session.masks?.get(s.id));
    const key = `${session.record.id}:${segments.map((s) => `${s.id}@${session.masks.revision(s.id)}${s.color}`).join(',')}`;
    if (key === shown) return;
    try {
      const viewer = await ensure();
      const { record } = session;
      const layers = segments.map((s) => ({ label: s.label, data: session.masks.get(s.id).data }));
      const labels = labelMap(record.shape, layers);
      for (const old of [...viewer.volumes]) viewer.removeVolume(old);
      if (labels.some((v) => v !== 0)) { // NiiVue cannot scale an all-zero volume: show none
        const url = URL.createObjectURL(new Blob([niftiBytes(record, labels)]));
        try {
          const image = await window.niivue.NVImage.loadFromUrl({ url, name: 'segments.nii' });
          image.setColormapLabel(colourTable(segments));
          viewer.addVolume(image);
        } finally {
          URL.revokeObjectURL(url);
        }
      }
      viewer.setSliceType(viewer.sliceTypeRender);
      viewer.drawScene();
      shown = key;
      $('.state').textContent = segments.length
        ? `${segments.length} segment${segments.length === 1 ? '' : 's'}, volume-rendered · drag to rotate`
        : 'no visible segment with a mask yet';
      el.dataset.rendered = String(Number(el.dataset.rendered) + 1);
    } catch (err) {
      $('.state').textContent = err.message;
      app.warn('3D view unavailable', err.message);
    }
  }

  // one rendering at a time, the latest state last
  let chain = Promise.resolve();
  const queue = () => { chain = chain.then(render); return chain; };
  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(queue, 300);
  };

  function toggle(open = el.hidden) {
    el.hidden = !open;
    if (open) {
      shown = '';
      queue();
    }
    app.emit('render3d-shown', { open });
  }

  $('.close').onclick = () => toggle(false);
  app.addEventListener('render3d', () => toggle());
  app.addEventListener('overlay', later);
  app.addEventListener('segments', later);
  app.addEventListener('session', () => { shown = ''; later(); });
  return { toggle, render: queue };
}
