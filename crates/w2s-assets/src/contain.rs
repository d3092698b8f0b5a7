//! A panic inside a third-party reader (arrow's buffers, tokenizers' deserialisers, candle's
//! parsers) turned into an error. w2s's own readers return errors; the crates they call sometimes
//! panic on malformed input instead (found by w2s-fuzz), and a panic must not be what a user sees
//! for a bad file. The panic's message is kept for the error and not printed: a hook, installed on
//! first use, stays silent for panics inside [`contain`] and passes every other panic on to the
//! hook that was there before.
use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, OnceLock};

thread_local! {
    /// Depth of [`contain`] calls on this thread.
    static INSIDE: Cell<usize> = const { Cell::new(0) };
    /// The message of the last contained panic on this thread.
    static MESSAGE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

fn install_hook() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        type Hook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;
        let previous: Mutex<Hook> = Mutex::new(std::panic::take_hook());
        std::panic::set_hook(Box::new(move |info| {
            if INSIDE.with(|d| d.get()) > 0 {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                MESSAGE.with(|m| *m.borrow_mut() = Some(message));
            } else {
                (previous.lock().unwrap_or_else(|p| p.into_inner()))(info);
            }
        }));
    });
}

/// Runs `f`; a panic inside it becomes `Err` with the panic's message, printed nowhere.
pub fn contain<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    install_hook();
    INSIDE.with(|d| d.set(d.get() + 1));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    INSIDE.with(|d| d.set(d.get() - 1));
    result.map_err(|_| {
        MESSAGE
            .with(|m| m.borrow_mut().take())
            .unwrap_or_else(|| "a panic".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contained_panic_is_an_error_with_its_message() {
        assert_eq!(contain(|| 7), Ok(7));
        let e = contain(|| -> u8 { panic!("offset {} past the end", 9) }).unwrap_err();
        assert_eq!(e, "offset 9 past the end");
        // Nested: the inner one is contained, the outer goes on.
        let outer = contain(|| contain(|| panic!("inner")).unwrap_err());
        assert_eq!(outer.as_deref(), Ok("inner"));
        // Outside `contain`, panics still panic.
        assert!(std::panic::catch_unwind(|| panic!("outside")).is_err());
    }
}
