// Organ start (RefineNet, issue 14): the organ model segments a named organ in the whole volume
// with no prompt (`{"type": "organ", "organ": "liver"}`, 3D). The organs on offer are the
// organ model's (its card in /v1/models: task `organ`, `organs`), when the server lists the
// `organ` interaction type. The answer is a change like any other: its delta is painted, undo
// takes it back. It runs for a few seconds (the network on every axial slice), so a progress
// bar shows while it does.

import { ProgressBar } from './progress.js';

/** "kidney_left" -> "kidney left" (the segment's name: the organ presets' spelling). */
export function organLabel(name) {
  return String(name).replace(/_/g, ' ');
}

/**
 * The organs the server can start: [{name, label, dice}] from the organ model's card (`dice`:
 * its held-out Dice for that organ, null when not measured); [] when there is none or the
 * server takes no `organ` start.
 */
export function organsOffered(caps, models) {
  if (!caps?.interaction_types?.includes('organ')) return [];
  const card = (models?.models ?? []).find((m) => m.task === 'organ' && m.organs?.length);
  if (!card) return [];
  const dice = card.metrics?.dice ?? {};
  return card.organs.map((name) => ({ name, label: organLabel(name),
    dice: typeof dice[name] === 'number' ? dice[name] : null }));
}

/** Which segment an organ start goes to: the active one when it is empty and named after the
 * organ (made with the "+ organ…" preset), else null (a new one, named after the organ). */
export function organTarget(segment, voxels, organ) {
  if (!segment || voxels !== 0) return null;
  const name = String(segment.name ?? '').trim().toLowerCase();
  return name === organLabel(organ) || name === organ ? segment.id : null;
}

/**
 * Segment `organ` with the organ model; resolves to true when the mask was applied. Tracked by
 * the editor from the start (the segment's creation included), so `editor.settled()` waits
 * for all of it.
 */
export function startOrgan(app, organ) {
  return app.session.editor.track(organStart(app, organ));
}

async function organStart(app, organ) {
  const { session } = app;
  if (!session.record) return false;
  const label = organLabel(organ);
  const active = session.activeSegment;
  session.flushStats(); // the held masks' voxel counts, up to date
  const voxels = active ? session.segmentStats(active.id)?.voxels ?? null : null;
  const bar = new ProgressBar(app.jobsElement ?? document.body, `segment ${label}`);
  bar.el.dataset.organ = organ;
  bar.set(0, null, 'the organ model reads every axial slice…');
  try {
    if (organTarget(active, voxels, organ) === null) await session.createSegment(label);
  } catch (err) {
    bar.finish('failed', true);
    app.report(err);
    return false;
  }
  const done = await session.editor.send({ type: 'organ', organ, dim: '3d' }, null);
  if (done) {
    bar.finish('done');
    session.flushStats();
    const stats = session.segmentStats(session.activeSegmentId);
    app.notify(stats?.voxels ? `${label}: segmented (correct it with clicks; Ctrl+Z takes it back).`
      : `${label}: the organ model found nothing here.`);
  } else bar.finish('failed', true);
  return Boolean(done);
}
