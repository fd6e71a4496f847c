//! `lb-sni`: placeholder until its issue lands.

fn main() {
    eprintln!("usage: lb-sni --config FILE (not implemented yet)");
    std::process::exit(2);
}
