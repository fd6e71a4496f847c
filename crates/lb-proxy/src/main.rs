//! `lb-proxy`: placeholder until its issue lands.

fn main() {
    eprintln!("usage: lb-proxy --config FILE (not implemented yet)");
    std::process::exit(2);
}
