//! `lb-cli`: placeholder until its issue lands.

fn main() {
    eprintln!("usage: lb-cli --config FILE (not implemented yet)");
    std::process::exit(2);
}
