//! The registration: the contract appended to the runtime's `FUNCTIONS` distributed slice
//! (`linkme`), so linking the crate is enough for pipeline files to find the function by name.

use proc_macro2::TokenStream;
use quote::quote;

use super::Target;

/// `#[distributed_slice(FUNCTIONS)] static __HCS_REGISTRATION = <name>::FUNC;`
pub(super) fn registration(t: &Target<'_>) -> TokenStream {
    let (name, rt) = (t.name(), t.rt);
    quote! {
        #[#rt::linkme::distributed_slice(#rt::FUNCTIONS)]
        #[linkme(crate = #rt::linkme)]
        static __HCS_REGISTRATION: &'static #rt::FunctionContract = #name::FUNC;
    }
}
