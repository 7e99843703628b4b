//! Providers: each knows one family of reference tensors and how to compute it from a case's
//! inputs (PNGs, prompts, model/policy files) — never from other reference tensors.
//!
//! A provider looks at the wanted names, computes those it recognises and records each result
//! (or the reason it could not be computed, which counts as a failure). Names no provider
//! recognises stay unchecked.

use std::collections::{BTreeMap, BTreeSet};

use burn::prelude::Backend;

use super::case::Case;
use super::tensor::HostTensor;

mod images;
mod paligemma_model;
mod prompts;
mod robovlms;
mod robovlms_inputs;
mod tokens;

/// Computed tensors by reference name; `Err` = recognised but could not be computed.
pub type Produced = BTreeMap<String, Result<HostTensor, String>>;

/// What a provider is asked for.
pub struct Request<'a> {
    /// The case.
    pub case: &'a Case,
    /// Reference names still wanted (after `--only` and the skip list).
    pub wanted: &'a BTreeSet<String>,
}

impl Request<'_> {
    /// Records the outcome for `name` if it is wanted.
    pub fn put(&self, out: &mut Produced, name: String, result: Result<HostTensor, String>) {
        if self.wanted.contains(&name) {
            out.insert(name, result);
        }
    }
}

/// Runs every provider on backend `B`.
pub fn produce<B: Backend>(req: &Request<'_>, device: &B::Device) -> Produced {
    let mut out = Produced::new();
    tokens::provide(req, &mut out);
    prompts::provide(req, &mut out);
    images::provide::<B>(req, device, &mut out);
    robovlms_inputs::provide::<B>(req, device, &mut out);
    paligemma_model::provide::<B>(req, device, &mut out);
    robovlms::provide::<B>(req, device, &mut out);
    out
}
