//! `#[derive(Cell)]`: a struct of integers and booleans as a strategy's cell.
//! The packing itself is const code in `powerplug_sdk::cell`; this only names
//! the fields and their types.

use proc_macro::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Error, Fields, parse_macro_input};

/// Implements `powerplug_sdk::Cell` for a struct with named fields of `u8`,
/// `u16`, `u32`, `u64`, `i8` … `i64` or `bool`, packed in declaration order into
/// the cell's four 64-bit words (a field never straddles two words). Fields that
/// do not fit are a compile error.
#[proc_macro_derive(Cell)]
pub fn derive_cell(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &input.generics,
            "#[derive(Cell)]: a cell cannot be generic",
        ));
    }
    let named = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => &named.named,
            _ => {
                return Err(Error::new_spanned(
                    name,
                    "#[derive(Cell)]: the struct needs named fields",
                ));
            }
        },
        _ => {
            return Err(Error::new_spanned(
                name,
                "#[derive(Cell)]: only a struct can be a cell",
            ));
        }
    };
    let fields: Vec<_> = named.iter().filter_map(|f| f.ident.as_ref()).collect();
    let types: Vec<_> = named.iter().map(|f| &f.ty).collect();
    let count = fields.len();
    let index = 0..count;
    let sdk = quote!(::powerplug_sdk);
    let layout = quote! {
        const AT: [(usize, u32); #count] =
            #sdk::cell::layout([#(<#types as #sdk::CellField>::BITS),*]);
    };
    let index2 = index.clone();
    Ok(quote! {
        // A free constant is always evaluated: fields that do not fit are an
        // error here even if the cell is never read.
        const _: () = {
            #layout
        };

        impl #sdk::Cell for #name {
            fn from_words(words: #sdk::Words) -> Self {
                #layout
                Self { #(#fields: #sdk::cell::read(&words, AT[#index]),)* }
            }

            fn to_words(&self) -> #sdk::Words {
                #layout
                let mut words = [0u64; 4];
                #(#sdk::cell::write(&mut words, AT[#index2], self.#fields);)*
                words
            }
        }
    })
}
