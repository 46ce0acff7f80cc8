"""Physics-guided simulators parameterised by :class:`sonoedge.types.ProbeInfo`.

Submodules (import what you need; nothing heavy is imported here):

- ``transducer``: probe presets and the point-spread function (PSF).
- ``phantoms``: echogenicity maps (layers, cysts, lesions, vessels, point targets).
- ``speckle``: speckled B-mode images with clean despeckling targets.
- ``doppler``: IQ ensembles with tissue clutter, handheld motion and blood in vessel trees.
- ``microbubbles``: contrast-bubble frames with ground-truth positions and tracks (PgD).
- ``degradation``: blur + noise degradation model for blind enhancement.
- ``live``: a continuous-time scene that feeds the virtual probe.
- ``datasets``: chunked HDF5 datasets behind ``sonoedge synth``.
"""
