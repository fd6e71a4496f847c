//! PLACEHOLDER: being implemented (see select/mod.rs for the contract).

use super::modulo::{Modulo, SlotWalk};
use super::{Loads, Node, Params, PickInput, Select};

/// PLACEHOLDER.
#[derive(Debug, Clone)]
pub struct Random(Modulo);

impl Select for Random {
    type Iter<'a, L: Loads + ?Sized + 'a> = SlotWalk<'a>;
    fn build(nodes: &[Node], params: &Params) -> Self {
        Random(Modulo::build(nodes, params))
    }
    fn candidates<'a, L: Loads + ?Sized>(&'a self, input: PickInput, loads: &'a L) -> SlotWalk<'a> {
        self.0.candidates(input, loads)
    }
}
