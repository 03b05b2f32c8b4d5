// medseg's OHIF mode (OHIF 3.13, loaded at run time from window.config.modes): OHIF's own
// segmentation mode (its layout, tools and SEG display) with the medseg extension, whose panel
// opens with the mode. Route: /ohif/medseg?StudyInstanceUIDs=... (docs/ohif.md).

// OHIF imports a mode's extensions by these keys: the extension's URL (already registered
// from window.config.extensions, so the same module is not registered twice)
const EXTENSION = new URL('./extension.js', import.meta.url).href;

export default {
  id: 'medseg',
  async modeFactory({ modeConfiguration, loadModules }) {
    const [segmentation] = await loadModules(['@ohif/mode-segmentation']);
    const base = await segmentation.modeFactory({ modeConfiguration });
    return {
      ...base,
      id: 'medseg',
      routeName: 'medseg',
      displayName: 'medseg interactive segmentation',
      extensions: { ...base.extensions, [EXTENSION]: '^0.1.0' },
      onModeEnter(context) {
        base.onModeEnter.call(this, context);
        window.medsegOhif?.enter();
      },
      onModeExit(context) {
        window.medsegOhif?.exit();
        base.onModeExit?.call(this, context);
      },
    };
  },
};
