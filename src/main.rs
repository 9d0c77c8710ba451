//! The `corepool` binary: corepool's demo service, built the way
//! `corepool new` builds any service. Its name (the binary's) gives it its
//! units, paths, user and nginx site; `corepool_demo` has its routes.

use corepool_demo::{ComputeConfig, PasswordConfig};

fn main() -> std::process::ExitCode {
    let service = corepool::service!()
        .section::<ComputeConfig>()
        .section::<PasswordConfig>()
        .router(corepool_demo::routes())
        // nginx caches /compute's answers (they say max-age); nothing else uses its cache.
        .cacheable("/compute");
    corepool::main(service)
}
