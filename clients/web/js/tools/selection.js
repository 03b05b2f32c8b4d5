// The user's choices for the next interaction: the active tool among those the server offers,
// 2D or 3D, the method for each interaction type and its parameter overrides, and the
// propagation method. Emits 'tool' on the app when the tool or the dimension changes.

import { allTools } from './index.js';

export class ToolSelection {
  constructor(app) {
    this.app = app;
    this.caps = null; // /v1/capabilities: the methods to choose from
    this.offered = []; // tools whose interaction type the server lists
    this.active = null;
    this.dim = '2d';
    this.preferredMethod = {}; // interaction type -> method name picked by the user
    this.methodParams = {}; // method name -> {param: value} overrides of its defaults
    this.propagationMethod = null; // picked from /v1/capabilities propagation_methods
    this.capture = null; // (tool, gesture, view) => true when a panel takes the gesture instead
    this.radiusMm = 3; // the paint / erase brush radius (the edit panel, keys , and .)
    this.threshold = { low: -100, high: 200 }; // the threshold brush's window (HU for CT)
  }

  /** The threshold brush paints voxels with low <= intensity <= high (swapped if reversed). */
  setThreshold(low, high) {
    if (!Number.isFinite(low) || !Number.isFinite(high)) return;
    this.threshold = { low: Math.min(low, high), high: Math.max(low, high) };
    this.app.emit('radius');
  }

  /** Offer the tools for the interaction types `caps` lists; the first one becomes active. */
  offer(caps) {
    this.caps = caps;
    const offered = new Set(caps.interaction_types);
    this.offered = allTools().filter((t) => offered.has(t.type));
    this.setTool(this.offered[0] ?? null);
  }

  methodsFor(type, dim = this.dim) {
    return (this.caps?.methods ?? []).filter((m) => m.interaction_types.includes(type) && m.dims.includes(dim));
  }

  methodFor(type, dim = this.dim) {
    const methods = this.methodsFor(type, dim);
    const pick = (name) => methods.find((m) => m.name === name);
    return pick(this.preferredMethod[type]) ?? pick(this.caps.default_method) ?? methods[0] ?? null;
  }

  setTool(tool) {
    this.active = tool;
    this.app.emit('tool');
  }

  setRadius(mm) {
    this.radiusMm = Math.round(Math.max(0.5, Math.min(50, mm)) * 2) / 2;
    this.app.emit('radius');
  }

  setDim(dim) {
    this.dim = dim;
    this.app.emit('tool');
  }

  /** Forget what tools hold for the last session (placed points). */
  reset() {
    for (const tool of this.offered) tool.reset?.();
  }
}
