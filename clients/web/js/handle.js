// window.medseg: the browser tests (tests/web), the latency benchmark
// (services/medseg/bench/browser.py) and the console reach into the viewer by these names, so
// they stay put while the modules behind them move. Everything else is under `app`.

export function consoleHandle(app) {
  const { session, tools, views, clock } = app;
  return {
    app,
    api: app.api,
    views: views.byAxis,
    messages: app.messages,
    get session() { return session.record; },
    get segments() { return session.segments; },
    get activeSegmentId() { return session.activeSegmentId; },
    get masks() { return session.masks; },
    get slices() { return session.slices; },
    get editor() { return session.editor; },
    get jobs() { return session.jobs; },
    get tool() { return tools.active; },
    get hints() { return app.hints; },
    get methodParams() { return tools.methodParams; },
    get windowName() { return views.windowName; },
    get crosshair() { return views.crosshair; },
    set crosshair(on) { views.crosshair = on; },
    get latencies() { return clock.latencies; },
    set latencies(list) { clock.latencies = list; },
    createSegment: (name) => session.createSegment(name),
    addEventListener: (...args) => app.addEventListener(...args),
    removeEventListener: (...args) => app.removeEventListener(...args),
  };
}
