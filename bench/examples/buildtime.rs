// Scratch timing of table::build (not committed).
#[path = "../src/workload.rs"]
mod workload;
fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let t = std::time::Instant::now();
    let rules = workload::list(1, n);
    eprintln!("gen {:.2}", t.elapsed().as_secs_f64());
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let b = filter_user::table::build(&rules, 7, 1, n).unwrap();
        eprintln!("build {:.3} s ({} buckets)", t.elapsed().as_secs_f64(), b.buckets.len());
        let mut f = filter_user::loader::Filter::load().unwrap();
        let t = std::time::Instant::now();
        f.install(&b).unwrap();
        eprintln!("install {:.3} s", t.elapsed().as_secs_f64());
    }
}
