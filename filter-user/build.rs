//! Builds the XDP program with aya-build (nightly + bpf-linker) and embeds it.
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let cargo_metadata::Metadata { packages, .. } =
        cargo_metadata::MetadataCommand::new().no_deps().exec().context("MetadataCommand::exec")?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "filter-ebpf")
        .ok_or_else(|| anyhow!("filter-ebpf package not found"))?;
    let root_dir = ebpf.manifest_path.parent().ok_or_else(|| anyhow!("filter-ebpf manifest has no parent"))?;
    // The shared crate is compiled into the program too.
    println!("cargo:rerun-if-changed={}", root_dir.join("../filter-common/src"));
    aya_build::build_ebpf(
        [Package { name: "filter-ebpf", root_dir: root_dir.as_str(), ..Default::default() }],
        Toolchain::default(),
    )
}
