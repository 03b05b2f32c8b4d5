// The active segment's history (GET .../history): what made each revision, newest first;
// undone revisions (the redo stack) are struck through. Each interaction (click, stroke, box,
// points, edit) has a ✕ that removes it from the history: the server replays the rest and
// answers a new revision (undo brings it back); an interaction removed so is marked so.

const SHOWN = 15;

export function mountHistory(app, el) {
  el.innerHTML = '<details open><summary>History</summary><ol class="history" reversed></ol></details>';
  const list = el.querySelector('.history');
  let shownFor = ''; // "segment@revision" the list was loaded for
  let timer = 0;
  const { session } = app;

  async function load() {
    const segment = session.activeSegment;
    el.hidden = !segment;
    if (!segment) return;
    const key = `${session.record.id}/${segment.id}@${segment.revision}/${segment.can_redo}`;
    if (key === shownFor) return;
    shownFor = key;
    let history;
    try {
      history = await session.loadHistory(segment.id);
    } catch (err) {
      if (err.status !== 404) app.report(err);
      return;
    }
    // interactions taken out by a removal still in force (not undone)
    const removed = new Set(history.revisions
      .filter((r) => r.interaction.type === 'remove' && !r.undone).map((r) => r.interaction.removed));
    list.replaceChildren(...history.revisions.slice(-SHOWN).reverse().map((r) => {
      const li = document.createElement('li');
      li.dataset.revision = r.revision;
      li.value = r.revision;
      li.classList.toggle('head', r.is_head);
      li.classList.toggle('undone', r.undone);
      const what = r.interaction;
      let where = what.plane ? ` ${what.plane.axis}=${what.plane.index}` : '';
      let dim = what.type === 'create' ? '' : what.plane ? ' 2D' : ' 3D';
      if (what.type === 'propagation') {
        dim = '';
        where = ` ${what.axis} from ${what.start_index} · ${what.slices_changed?.length ?? 0} slices`;
      } else if (what.type === 'finetune') {
        dim = '';
        where = ` (${what.mode})`;
      } else if (what.type === 'organ') {
        where = ` ${what.options?.organ ?? ''}`;
      } else if (what.type === 'remove') {
        dim = '';
        where = ` #${what.removed} · ${what.replayed} replayed`;
      }
      const ms = Object.values(r.timings_ms ?? {}).reduce((a, b) => a + b, 0);
      li.textContent = `${what.type}${dim}${where} · ${r.voxels} voxels${ms ? ` · ${ms.toFixed(0)} ms` : ''}`;
      li.title = `${r.created_at}${what.method ? ` · ${what.method}` : ''}`;
      li.classList.toggle('removed', removed.has(r.revision));
      if (what.marks && what.method && !r.undone && !removed.has(r.revision)) {
        const x = document.createElement('button');
        x.className = 'remove-prompt';
        x.textContent = '✕';
        x.title = `remove this ${what.type} from the history (the later changes are made again without it; undo brings it back)`;
        x.onclick = () => session.editor.removeInteraction(segment.id, r.revision);
        li.prepend(x, ' ');
      }
      return li;
    }));
  }

  // changes come in bursts (click, undo, redo): load once they settle; whether there is a
  // segment to show a history for is known at once (a burst of fast answers could otherwise
  // keep the panel hidden since the page opened with no segment)
  const later = () => {
    el.hidden = !session.activeSegment;
    clearTimeout(timer);
    timer = setTimeout(load, 250);
  };
  app.addEventListener('segments', later);
  app.addEventListener('session', later);
}
