"""Static files: hashed names (cached for a year), gzip and brotli copies, and a fallback.

`make run` runs collectstatic, which writes `name.<hash>.ext` plus `.gz`/`.br` copies into
STATIC_ROOT; WhiteNoise then serves the compressed copy with `Cache-Control: immutable`.
Plotly's cartesian bundle (1.5 MB) travels as about 0.4 MB of brotli, once per browser.
Before collectstatic has run (tests, a fresh checkout started by hand) a name with no
hashed copy falls back to the plain URL, which WhiteNoise serves through the finders.
"""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StudioStaticStorage(CompressedManifestStaticFilesStorage):
    manifest_strict = False
    keep_only_hashed_files = False  # the plain names stay for the finders' fallback

    def compress_files(self, paths):
        """Compress hashed files only, and only once: `name.<hash>.js.br` from an earlier
        collectstatic is already right (the hash is of the content), so a second `make run`
        skips plotly's seconds of brotli."""
        hashed = set(self.hashed_files.values())
        fresh = [p for p in paths if p in hashed
                 and not (self.exists(p + ".br") and self.exists(p + ".gz"))]
        return super().compress_files(fresh)

    def url(self, name, force=False):
        # Hashed whenever collected, DEBUG or not (Django would use plain names in DEBUG):
        # `make run` collects at every start, so the hashed copy is never stale there.
        try:
            return super().url(name, force=True)
        except ValueError:  # not collected yet: serve the original through the finders
            return super(CompressedManifestStaticFilesStorage, self)._url(
                lambda n, *a, **k: n, name, force)
