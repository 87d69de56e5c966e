"""Super-resolution layouts for BasicSR, Real-ESRGAN and mmagic (SPEC §8).

- :mod:`methbuild.sr.pairs`: ``GT/`` + ``LRbicx<s>/`` paired folders, LR·s = HR exactly (MATLAB bicubic,
  decoded once through :mod:`methbuild.lowres`).
- :mod:`methbuild.sr.subimages`: BasicSR's ``extract_subimages`` crops, each image read once.
- :mod:`methbuild.sr.lmdb`: BasicSR's LMDB layout, written in bounded batches.
- :mod:`methbuild.sr.degrade`: Real-ESRGAN's second-order degradation applied offline, seeded per image,
  every parameter recorded and replayable bit for bit.

BasicSR's scripts are the compatibility contract (folder and file names, ``meta_info.txt``, LMDB keys);
the work itself decodes each image once and streams.
"""
