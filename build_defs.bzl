"""Build shapes btrdupd repeats: a library of one file and its header, a bench script."""

def cc_unit(name, deps = [], header_only = False, **kwargs):
    """A cc_library of one source file and its header, NAME.cc and NAME.h.

    header_only: NAME.h alone. Every btrdupd library speaks absl::Status, so
    //third_party:absl is always a dependency; `deps` lists the others. linkstatic
    like every btrdupd library: no shared object is made for it (.bazelrc links
    everything statically). Other cc_library arguments (testonly, ...) pass through.
    """
    native.cc_library(
        name = name,
        srcs = [] if header_only else [name + ".cc"],
        hdrs = [name + ".h"],
        linkstatic = True,
        deps = deps + ["//third_party:absl"],
        **kwargs
    )

def bench_script(name, data = []):
    """A shell bench, NAME.sh, that runs the btrdupd binary with bench/bench_lib.sh."""
    native.sh_binary(
        name = name,
        srcs = [name + ".sh"],
        data = ["bench_lib.sh", "//daemon:btrdupd"] + data,
    )
