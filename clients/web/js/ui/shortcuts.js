// Keyboard shortcuts: one table that both binds the keys and writes the help overlay.

import { propagate, toggleLock } from '../propagation.js';
import { downloadLabels } from './download.js';
import { adjust } from './edit.js';

export const MOUSE = [
  ['left click / drag', 'tool: inside the object (foreground)'],
  ['right click / drag', 'tool: outside the object (background)'],
  ['wheel', 'next / previous slice'],
  ['Ctrl + wheel', 'zoom at the cursor'],
  ['middle drag, Space + drag or Ctrl + drag', 'pan'],
  ['Alt + drag', 'window (left-right) and level (up-down)'],
  ['Shift + click', 'move the other views to this point'],
  ['click “locked” in a view title', 'unlock that slice of the active segment'],
  ['click a padlock by a slider', 'go to that locked slice'],
];

function bindings(app, overlay) {
  const { session, tools, views } = app;
  const view = () => views.focus;
  // one help row for the tool keys (the toolbar buttons' tooltips say what each does)
  const toolKeys = tools.offered.map((t) => [t.key, `${t.label} tool`, () => tools.setTool(t), 'tools']);
  return [
    ['?', 'show / hide this help', () => overlay.toggle()],
    ...toolKeys,
    ['Enter', 'Points tool: send the placed points', () => tools.active?.send?.(app)],
    ['Backspace', 'Points tool: take the last point back', () => tools.active?.undoPoint?.()],
    [',', 'smaller', () => tools.setRadius(tools.radiusMm - 0.5), 'paint / erase brush (mm):'],
    ['.', 'larger', () => tools.setRadius(tools.radiusMm + 0.5), 'paint / erase brush (mm):'],
    ['{', 'shrink', () => adjust(app, -1), 'adjust the active segment:'],
    ['}', 'grow', () => adjust(app, 1), 'adjust the active segment:'],
    ['d', '2D (this slice) / 3D (the volume)', () => tools.setDim(tools.dim === '2d' ? '3d' : '2d')],
    ['Ctrl+z', 'undo', () => session.undo()],
    ['Ctrl+y', 'redo (also Ctrl+Shift+Z)', () => session.redo()],
    ['ArrowUp', 'next slice (also ArrowRight)', () => view().setIndex(view().index + 1)],
    ['ArrowDown', 'previous slice (also ArrowLeft)', () => view().setIndex(view().index - 1)],
    ['PageUp', '10 slices on', () => view().setIndex(view().index + 10)],
    ['PageDown', '10 slices back', () => view().setIndex(view().index - 10)],
    ['l', 'lock / unlock the slice of the view (propagation leaves locked slices alone)', () => toggleLock(app, view())],
    ['p', 'propagate the active segment from this slice along the view\'s axis (a job; progress in the toolbar)', () => propagate(app, view())],
    ['f', 'fine-tune the active segment on this image (box + bifseg segments; with the scribbles drawn, if any)', () => app.emit('finetune')],
    ['1', 'axial view as main view', () => views.setMain('z')],
    ['2', 'coronal view as main view', () => views.setMain('y')],
    ['3', 'sagittal view as main view', () => views.setMain('x')],
    ['v', 'one view / three views', () => views.toggleSingle()],
    ['x', 'show / hide the crosshair', () => views.toggleCrosshair()],
    ['m', 'show / hide the prompts sent (drawn until the next revision)', () => app.prompts.toggle()],
    ['j', 'hints: where the active segment is most likely wrong (again: go to the next one)', () => app.hints.fetchOrNext()],
    ['Delete', 'remove the prompt shown (the active segment\'s last interaction) from the history', () => app.prompts.removeShown()],
    ['4', 'show / hide the 3D rendering of the segments', () => app.emit('render3d')],
    ['+', 'zoom in', () => view().zoomBy(1.25)],
    ['-', 'zoom out', () => view().zoomBy(0.8)],
    ['0', 'fit the image', () => view().resetView()],
    ['w', 'next window preset', () => app.emit('next-window')],
    ['a', 'automatic window', () => views.autoWindow()],
    ['n', 'new segment', () => session.createSegment().catch((e) => app.report(e))],
    ['[', 'previous segment', () => cycleSegment(session, -1)],
    [']', 'next segment', () => cycleSegment(session, 1)],
    ['h', 'hide / show the active segment', () => {
      const s = session.activeSegment;
      if (s) session.styleSegment(s.id, { visible: !s.visible });
    }],
    ['e', 'export the label map (NIfTI)', () => downloadLabels(app).catch((e) => app.report(e))],
    ['o', 'open or upload an image', () => app.emit('open')],
    ['Escape', 'close this help / the open screen', () => { overlay.hide(); app.emit('escape'); }],
  ];
}

const ALIASES = { ArrowRight: 'ArrowUp', ArrowLeft: 'ArrowDown', 'Ctrl+Z': 'Ctrl+y', '=': '+', F1: '?' };

function cycleSegment(session, step) {
  const n = session.segments.length;
  if (!n) return;
  const i = session.segments.findIndex((s) => s.id === session.activeSegmentId);
  session.setActiveSegment(session.segments[(i + step + n) % n].id);
}

function keyName(e) {
  if (e.ctrlKey || e.metaKey) return `Ctrl+${e.shiftKey ? e.key.toUpperCase() : e.key.toLowerCase()}`;
  return e.key.length === 1 ? e.key.toLowerCase() : e.key;
}

export function mountShortcuts(app, overlayEl) {
  const overlay = {
    toggle() { this.visible ? this.hide() : this.show(); },
    show() {
      const rows = [];
      for (const [k, what, , group] of bindings(app, overlay)) {
        const last = rows[rows.length - 1];
        if (group && last?.group === group) {
          last.keys.push(k);
          last.what.push(what);
        } else rows.push({ group, keys: [k], what: [what] });
      }
      const keys = rows.map(({ group, keys: ks, what }) => `<tr><td>${ks.map((k) => `<kbd>${k}</kbd>`).join(' ')}</td><td>${
        group && group !== 'tools' ? `${group} ` : ''}${what.join(group ? ', ' : '')}</td></tr>`);
      const mouse = MOUSE.map(([k, what]) => `<tr><td>${k}</td><td>${what}</td></tr>`);
      // two columns of about equal height, so the whole table fits a 1366 x 768 screen
      const headings = 4; // the two headings take about as much room as four rows
      const first = Math.max(0, Math.ceil((mouse.length + keys.length + headings) / 2) - mouse.length - headings);
      overlayEl.innerHTML = `<div class="card"><div class="columns">
        <div><h2>Mouse</h2><table>${mouse.join('')}</table>
          <h2>Keys</h2><table>${keys.slice(0, first).join('')}</table></div>
        <div><table class="more">${keys.slice(first).join('')}</table></div></div>
        <p>Press ? or Esc to close.</p></div>`;
      overlayEl.hidden = false;
      this.visible = true;
    },
    hide() { overlayEl.hidden = true; this.visible = false; },
    visible: false,
  };
  overlayEl.addEventListener('click', () => overlay.hide());
  app.addEventListener('help', () => overlay.toggle());
  const { keys } = app.views;
  window.addEventListener('keydown', (e) => {
    keys.add(e.key);
    const target = e.target;
    if (target.closest?.('input[type=text], input[type=number], input:not([type]), textarea, select, dialog')) return;
    let name = keyName(e);
    name = ALIASES[name] ?? name;
    const hit = bindings(app, overlay).find(([k]) => k === name);
    if (!hit) return;
    if (!app.session.record && !['?', 'o', 'Escape'].includes(name)) return;
    e.preventDefault();
    hit[2]();
  });
  window.addEventListener('keyup', (e) => keys.delete(e.key));
  window.addEventListener('blur', () => keys.clear());
  return overlay;
}
