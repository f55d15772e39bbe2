"""Token-mixing sublayers, one file each; :mod:`.registry` finds them (``get_mixer("fourier")``).

Start with :mod:`.fourier`: FNet's mixing is ``torch.fft.fftn(x, dim=(-2, -1)).real``.
"""
