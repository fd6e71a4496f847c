// The strict prefixes of an answer `used` bytes long to try: every one, or `few` of them
// (AFL's runs, for speed). Included by each check file.
fn prefixes(used: usize, every_prefix: bool, few: &[usize]) -> Vec<usize> {
    if every_prefix {
        (0..used).collect()
    } else {
        few.iter().copied().filter(|&cut| cut < used).collect()
    }
}
