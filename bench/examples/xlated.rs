// Scratch: dump the loaded program's xlated code (not committed).
fn main() {
    let mut f = filter_user::loader::Filter::load().unwrap();
    let info = f.program().unwrap().info().unwrap();
    let id = info.id();
    eprintln!("verified insns {:?}", info.verified_instruction_count());
    let out = std::process::Command::new("bpftool").args(["prog", "dump", "xlated", "id", &id.to_string()]).output().unwrap();
    std::fs::write("/tmp/xlated2.txt", out.stdout).unwrap();
}
