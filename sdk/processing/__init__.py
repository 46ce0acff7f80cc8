"""Classical ultrasound processing: the baselines every network is measured against and the
runtime's fallback when no model bundle is available.

Modules: :mod:`~sonoedge.processing.bmode` (envelope, TGC, log compression),
:mod:`~sonoedge.processing.scan_convert` (convex/phased to Cartesian),
:mod:`~sonoedge.processing.clutter` (SVD filters, power and colour Doppler),
:mod:`~sonoedge.processing.despeckle`, :mod:`~sonoedge.processing.deconvolution`,
:mod:`~sonoedge.processing.nllr`, :mod:`~sonoedge.processing.localization`,
:mod:`~sonoedge.processing.tracking`, :mod:`~sonoedge.processing.ulm` and
:mod:`~sonoedge.processing.psf_fit` (ULM localisations refined in IQ). The methods per op
are listed in :data:`sonoedge.processing.registry.METHODS`.
"""
