//! Parameter gradients that bypass candle's gradient store.
//!
//! candle's backward adds every gradient an op returns into its store: a `zeros_like` of the
//! input, then an `add` into a fresh buffer, even when the input has a single consumer. For a
//! trained weight that is two extra passes over its size on the calling thread (for BERT's word
//! embeddings, 2 × 47 MB of page-faulted memory every step). Inside [`backward`], the fused ops
//! hand the gradients of variables (leaves: nothing upstream needs them) to a per-thread sink
//! instead, and [`backward`] puts them into the store once, as they are. Outside it, the ops
//! return every gradient to candle as usual, so a plain `Tensor::backward` stays correct.
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, TensorId};
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    /// `Some` while [`backward`] runs on this thread: candle calls every op's backward on the
    /// thread that called `Tensor::backward`.
    static SINK: RefCell<Option<HashMap<TensorId, Tensor>>> = const { RefCell::new(None) };
}

/// Clears the sink when [`backward`] returns or unwinds, so a failed pass leaves nothing behind.
struct Collecting;

impl Drop for Collecting {
    fn drop(&mut self) {
        SINK.with(|s| s.borrow_mut().take());
    }
}

/// `loss.backward()`, with the fused ops' variable gradients stored directly: the same
/// gradients (bit for bit for a weight with one consumer), two fewer passes over each.
pub fn backward(loss: &Tensor) -> Result<GradStore> {
    let nested = SINK.with(|s| s.borrow().is_some());
    if nested {
        // A backward inside an op's backward: let candle handle that one entirely.
        return loss.backward();
    }
    SINK.with(|s| *s.borrow_mut() = Some(HashMap::new()));
    let guard = Collecting;
    let mut grads = loss.backward()?;
    let sunk = SINK.with(|s| s.borrow_mut().take()).unwrap_or_default();
    drop(guard);
    for (id, grad) in sunk {
        // The same variable may also have reached candle's store through a composed op.
        let total = match grads.get_id(id) {
            Some(other) => other.add(&grad)?,
            None => grad,
        };
        grads.insert_id(id, total);
    }
    Ok(grads)
}

/// The gradient for `input` as an op's backward should return it: `None` when the sink took
/// it (inside [`backward`], for a variable), otherwise `Some(grad)` for candle to add.
pub(crate) fn divert(input: &Tensor, grad: Option<Tensor>) -> Result<Option<Tensor>> {
    let Some(grad) = grad else { return Ok(None) };
    if !input.is_variable() {
        return Ok(Some(grad));
    }
    SINK.with(|s| {
        let mut sink = s.borrow_mut();
        let Some(map) = sink.as_mut() else {
            return Ok(Some(grad));
        };
        let total = match map.remove(&input.id()) {
            Some(earlier) => earlier.add(&grad)?,
            None => grad,
        };
        map.insert(input.id(), total);
        Ok(None)
    })
}
