// The status line: last server time (Server-Timing), click-to-paint time, revision, slice (and
// whether it is locked for the active segment), the voxel under the cursor and its value, the window.

import { LOCK_ICON } from '../propagation.js';

export function mountStatus(app, el) {
  el.innerHTML = `<span class="server" title="server time of the last request (Server-Timing)">server –</span>
    <span class="paint" title="from your click to the painted overlay">paint –</span>
    <span class="revision">rev –</span><span class="slice"></span><span class="locked" hidden title="this slice is locked for the active segment (L)">${LOCK_ICON} locked</span><span class="cursor"></span>
    <span class="window"></span><span class="mode"></span><span class="busy" hidden>working…</span>`;
  const $ = (s) => el.querySelector(s);
  const { session, tools, views } = app;
  app.addEventListener('status', (e) => {
    const d = e.detail;
    if (d.kind === 'server' && d.ms !== null && !d.path.includes('/slices/')) $('.server').textContent = `server ${d.ms.toFixed(1)} ms`;
    if (d.kind === 'paint') $('.paint').textContent = `click→paint ${d.ms.toFixed(0)} ms`;
    if (d.kind === 'revision') $('.revision').textContent = `rev ${d.revision}`;
    if (d.kind === 'slice') showSlice();
    if (d.kind === 'cursor') {
      $('.cursor').textContent = d.hit ? `[z y x] ${d.hit.zyx.join(' ')} = ${Number(d.value).toFixed(0)}` : '';
    }
  });
  app.addEventListener('window', () => {
    $('.window').textContent = `W ${views.window.width.toFixed(0)} L ${views.window.center.toFixed(0)}`;
  });
  function showSlice() {
    const v = views.main;
    $('.slice').textContent = v.layout ? `${v.layout.plane} ${v.index + 1}/${v.count}` : '';
    $('.locked').hidden = !(v.layout && v.updateLock());
  }
  const mode = () => {
    showSlice();
    const seg = session.activeSegment;
    $('.mode').textContent = `${tools.active?.label ?? '-'} ${tools.dim.toUpperCase()}` +
      (seg ? ` · ${seg.name}` : '');
    $('.revision').textContent = seg ? `rev ${seg.revision}` : 'rev –';
  };
  app.addEventListener('busy', (e) => {
    $('.busy').hidden = !e.detail.busy;
    document.body.classList.toggle('busy', e.detail.busy);
  });
  app.addEventListener('tool', mode);
  app.addEventListener('segments', mode);
}
