//! Attribute macros of `weir-sdk`: each turns a function or a trait impl into the exports of
//! one weir operator world. The WIT bindings of the exports are generated in the plugin
//! crate (one world per component); the imports come from `weir-sdk`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::{parse_macro_input, Item, ItemFn, ItemImpl};

/// The contract, embedded so the generated bindings always match this SDK's version.
const WIT: &str = include_str!("../../../wit/weir.wit");

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    Filter,
    FlatMap,
    KeySelector,
    Process,
    Aggregate,
    WindowProcess,
}

/// One operator world of the contract: the one table a new world is added to (with its
/// export glue in [`guest_impl`]).
struct World {
    kind: Kind,
    /// The world's WIT name (`%` escapes a WIT keyword).
    wit: &'static str,
    /// The SDK trait an operator implements, and the attribute macro that exports it.
    trait_name: &'static str,
    macro_name: &'static str,
    /// The function form, where there is one: (method, signature hint).
    fn_form: Option<(&'static str, &'static str)>,
    /// Host interfaces it imports beyond `types`, `log` and `context`.
    imports: &'static [&'static str],
}

const WORLDS: &[World] = &[
    World {
        kind: Kind::Map,
        wit: "%map",
        trait_name: "Map",
        macro_name: "map",
        fn_form: Some(("map", "fn(rec: Record) -> weir_sdk::Result<Record>` or `fn(rec: RecordView) -> weir_sdk::Result<Mapped>")),
        imports: &[],
    },
    World {
        kind: Kind::Filter,
        wit: "filter",
        trait_name: "Filter",
        macro_name: "filter",
        fn_form: Some(("filter", "fn(rec: &Record) -> weir_sdk::Result<bool>` or `fn(rec: RecordView) -> weir_sdk::Result<bool>")),
        imports: &[],
    },
    World {
        kind: Kind::FlatMap,
        wit: "flat-map",
        trait_name: "FlatMap",
        macro_name: "flat_map",
        fn_form: Some(("flat_map", "fn(rec: Record) -> weir_sdk::Result<Vec<Record>>")),
        imports: &[],
    },
    World {
        kind: Kind::KeySelector,
        wit: "key-selector",
        trait_name: "KeySelector",
        macro_name: "key_selector",
        fn_form: Some((
            "select_key",
            "fn(rec: &Record) -> weir_sdk::Result<Vec<u8>>` or `fn(rec: RecordView) -> weir_sdk::Result<Vec<u8>>",
        )),
        imports: &[],
    },
    World {
        kind: Kind::Process,
        wit: "process",
        trait_name: "Process",
        macro_name: "process",
        fn_form: None,
        imports: &["output", "state", "timers"],
    },
    World { kind: Kind::Aggregate, wit: "aggregate", trait_name: "Aggregate", macro_name: "aggregate", fn_form: None, imports: &[] },
    World {
        kind: Kind::WindowProcess,
        wit: "window-process",
        trait_name: "WindowProcess",
        macro_name: "window_process",
        fn_form: None,
        imports: &["output"],
    },
];

/// `weir:plugin/NAME@VERSION`, the version read from the embedded contract (written once, in
/// the WIT file).
fn qualified(name: &str) -> String {
    let package = WIT.lines().find_map(|l| l.trim().strip_prefix("package ")).map(|p| p.trim_end_matches(';')).unwrap_or("weir:plugin");
    match package.split_once('@') {
        Some((pkg, version)) => format!("{pkg}/{name}@{version}"),
        None => format!("{package}/{name}"),
    }
}

impl Kind {
    fn row(self) -> &'static World {
        WORLDS.iter().find(|w| w.kind == self).expect("every kind has a row")
    }
    fn world(self) -> String {
        qualified(self.row().wit)
    }
    fn trait_name(self) -> &'static str {
        self.row().trait_name
    }
    fn macro_name(self) -> &'static str {
        self.row().macro_name
    }
    fn fn_form(self) -> Option<(&'static str, &'static str)> {
        self.row().fn_form
    }
}

/// The export glue. `owned`: the operator is the function form on an owned `Record`, so its
/// `map` is called directly rather than through `map_view`. `migrate`: a process operator
/// that also exports the `migrate` interface (world `process-migrating`).
fn guest_impl(kind: Kind, ty: &TokenStream2, owned: bool, migrate: bool) -> TokenStream2 {
    let kind_trait = syn::Ident::new(kind.trait_name(), Span::call_site());
    let init = quote! {
        fn init(config: ::std::string::String) -> ::std::result::Result<(), ::weir_sdk::Error> {
            ::weir_sdk::rt::init::<#ty>(config, <#ty as ::weir_sdk::#kind_trait>::open)
        }
    };
    let rec = quote!(::weir_sdk::Record);
    let res = quote!(::std::result::Result);
    let err = quote!(::weir_sdk::Error);
    let vec = quote!(::std::vec::Vec);
    let types = quote!(::weir_sdk::wit::weir::plugin::types);
    let body = match kind {
        Kind::Map if owned => quote! {
            fn map(input: #types::Batch) -> #types::Mapped { ::weir_sdk::rt::map_owned::<#ty>(input) }
        },
        Kind::Map => quote! {
            fn map(input: #types::Batch) -> #types::Mapped { ::weir_sdk::rt::map::<#ty>(input) }
        },
        Kind::Filter => quote! {
            fn filter(input: #types::Batch) -> #types::Filtered { ::weir_sdk::rt::filter::<#ty>(input) }
        },
        Kind::FlatMap => quote! {
            fn flat_map(input: #types::Batch) -> #types::FlatMapped { ::weir_sdk::rt::flat_map::<#ty>(input) }
        },
        Kind::KeySelector => quote! {
            fn select_key(input: #types::Batch) -> #types::Keys { ::weir_sdk::rt::select_key::<#ty>(input) }
        },
        Kind::Process => quote! {
            fn process(batch: #types::Batch) -> #vec<#res<(), #err>> { ::weir_sdk::rt::process::<#ty>(batch) }
            fn on_timer(fired: #vec<::weir_sdk::Timer>) -> #res<(), #err> { ::weir_sdk::rt::on_timer::<#ty>(fired) }
        },
        Kind::Aggregate => quote! {
            fn create_accumulator() -> #vec<u8> { ::weir_sdk::rt::create_accumulator::<#ty>() }
            fn add(accumulator: #vec<u8>, batch: #vec<#rec>) -> #res<#vec<u8>, #err> { ::weir_sdk::rt::add::<#ty>(accumulator, batch) }
            fn merge(a: #vec<u8>, b: #vec<u8>) -> #res<#vec<u8>, #err> { ::weir_sdk::rt::merge::<#ty>(a, b) }
            fn get_result(accumulator: #vec<u8>) -> #res<#vec<u8>, #err> { ::weir_sdk::rt::get_result::<#ty>(accumulator) }
        },
        Kind::WindowProcess => quote! {
            fn process_window(window: ::weir_sdk::Window, elements: #vec<#rec>) -> #res<(), #err> { ::weir_sdk::rt::process_window::<#ty>(window, elements) }
        },
    };
    let world = if migrate { qualified("process-migrating") } else { kind.world() };
    let migrate_glue = migrate.then(|| {
        quote! {
            impl exports::weir::plugin::migrate::Guest for Glue {
                fn migrate_state(name: ::std::string::String, map_key: ::std::option::Option<#vec<u8>>, value: #vec<u8>)
                    -> #res<::std::option::Option<#vec<u8>>, ::std::string::String> {
                    ::weir_sdk::rt::migrate_state::<#ty>(name, map_key, value)
                }
            }
        }
    });
    let with_key = |iface: &str| syn::LitStr::new(&qualified(iface), Span::call_site());
    let interfaces = ["types", "log", "context"].iter().chain(kind.row().imports).map(|iface| {
        let (key, module) = (with_key(iface), syn::Ident::new(iface, Span::call_site()));
        quote!(#key: ::weir_sdk::wit::weir::plugin::#module,)
    });
    quote! {
        #[doc(hidden)]
        #[allow(clippy::all, unused)]
        mod __weir_export {
            ::weir_sdk::__wit_bindgen::generate!({
                inline: #WIT,
                world: #world,
                runtime_path: "::weir_sdk::__wit_bindgen::rt",
                with: {
                    #(#interfaces)*
                },
            });
            struct Glue;
            impl Guest for Glue {
                #init
                #body
            }
            #migrate_glue
            export!(Glue);
        }
    }
}

fn expand(kind: Kind, item: Item, migrate: bool) -> syn::Result<TokenStream2> {
    match item {
        Item::Impl(imp) => expand_impl(kind, imp, migrate),
        Item::Fn(f) => expand_fn(kind, f),
        other => Err(syn::Error::new_spanned(
            other,
            format!(
                "#[weir_sdk::{}] goes on `impl weir_sdk::{} for YourType {{ .. }}`{}",
                kind.macro_name(),
                kind.trait_name(),
                kind.fn_form().map(|(_, sig)| format!(" or on a `{sig}`")).unwrap_or_default()
            ),
        )),
    }
}

/// Marks `attrs`' function `#[inline]` unless it says otherwise. The SDK calls an operator's
/// functions once per record, and in Wasm a call costs far more than natively (a function
/// entry, and with the call deadline an epoch check): the hint lets LLVM fold them into the
/// SDK's loop (a tenth off a tiny map and filter, BENCHMARKS.md).
fn hint_inline(attrs: &mut Vec<syn::Attribute>) {
    if !attrs.iter().any(|a| a.path().is_ident("inline")) {
        attrs.push(syn::parse_quote!(#[inline]));
    }
}

fn expand_impl(kind: Kind, mut imp: ItemImpl, migrate: bool) -> syn::Result<TokenStream2> {
    let want = kind.trait_name();
    let ok = imp.trait_.as_ref().and_then(|(_, path, _)| path.segments.last()).is_some_and(|s| s.ident == want);
    if !ok {
        return Err(syn::Error::new_spanned(
            &imp.self_ty,
            format!("#[weir_sdk::{}] expects `impl weir_sdk::{want} for YourType`; this impl is not of `{want}`", kind.macro_name()),
        ));
    }
    if !imp.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(&imp.generics, "an exported operator cannot be generic; export a concrete type"));
    }
    for item in &mut imp.items {
        if let syn::ImplItem::Fn(f) = item {
            hint_inline(&mut f.attrs);
        }
    }
    let ty = &imp.self_ty;
    let glue = guest_impl(kind, &quote!(super::#ty), false, migrate);
    Ok(quote! { #imp #glue })
}

fn expand_fn(kind: Kind, mut f: ItemFn) -> syn::Result<TokenStream2> {
    let Some((method, sig)) = kind.fn_form() else {
        return Err(syn::Error::new_spanned(
            &f.sig.ident,
            format!(
                "#[weir_sdk::{}] has no function form: write `impl weir_sdk::{} for YourType {{ .. }}`",
                kind.macro_name(),
                kind.trait_name()
            ),
        ));
    };
    if f.sig.inputs.len() != 1 {
        return Err(syn::Error::new_spanned(&f.sig.inputs, format!("expected one parameter: `{sig}`")));
    }
    if matches!(f.sig.output, syn::ReturnType::Default) {
        return Err(syn::Error::new_spanned(&f.sig, format!("missing return type: expected `{sig}`")));
    }
    if f.sig.asyncness.is_some() || !f.sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(&f.sig, format!("an operator function is plain, not async or generic: `{sig}`")));
    }
    let name = &f.sig.ident;
    let trait_ident = syn::Ident::new(kind.trait_name(), Span::call_site());
    let method = syn::Ident::new(method, Span::call_site());
    let arg_ty = match f.sig.inputs.first() {
        Some(syn::FnArg::Typed(pt)) => pt.ty.clone(),
        Some(other) => return Err(syn::Error::new_spanned(other, format!("expected a free function: `{sig}`"))),
        None => unreachable!("checked above"),
    };
    let ret = match &f.sig.output {
        syn::ReturnType::Type(_, t) => t.clone(),
        syn::ReturnType::Default => unreachable!("checked above"),
    };
    let view = is_view(&arg_ty);
    let methods = if view {
        let view_method = syn::Ident::new(&format!("{method}_view"), Span::call_site());
        // The owned method goes through the view, so both give the same answer.
        let owned = match kind {
            Kind::Map => quote! {
                fn map(&mut self, rec: ::weir_sdk::Record) -> ::weir_sdk::Result<::weir_sdk::Record> {
                    #name(rec.view()).map(|m| m.apply(rec))
                }
            },
            Kind::Filter | Kind::KeySelector => quote! {
                fn #method(&mut self, rec: &::weir_sdk::Record) -> #ret { #name(rec.view()) }
            },
            _ => {
                return Err(syn::Error::new_spanned(&arg_ty, format!("#[weir_sdk::{}] takes an owned record: `{sig}`", kind.macro_name())))
            }
        };
        quote! {
            #owned
            fn #view_method(&mut self, rec: ::weir_sdk::RecordView<'_>) -> #ret { #name(rec) }
        }
    } else {
        quote! { fn #method(&mut self, rec: #arg_ty) -> #ret { #name(rec) } }
    };
    hint_inline(&mut f.attrs);
    let glue = guest_impl(kind, &quote!(super::__WeirFnOperator), !view, false);
    Ok(quote! {
        #f
        #[doc(hidden)]
        struct __WeirFnOperator;
        impl ::weir_sdk::#trait_ident for __WeirFnOperator {
            fn open(_: &::weir_sdk::Config) -> ::weir_sdk::Result<Self> { Ok(__WeirFnOperator) }
            #methods
        }
        #glue
    })
}

/// Whether a parameter type is the SDK's borrowed record (`RecordView`, `RecordView<'_>`,
/// `weir_sdk::RecordView<'a>`).
fn is_view(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "RecordView"))
}

fn run(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let original: TokenStream2 = item.clone().into();
    let attr2: TokenStream2 = attr.into();
    // `#[weir_sdk::process(migrate)]`: the process world with the `migrate` interface.
    let migrate = kind == Kind::Process && attr2.to_string() == "migrate";
    if !attr2.is_empty() && !migrate {
        let hint = match kind {
            Kind::Process => "takes no arguments but `migrate` (state migration on a hot reload, with `impl weir_sdk::Migrate`)",
            _ => "takes no arguments",
        };
        let e = syn::Error::new_spanned(attr2, format!("#[weir_sdk::{}] {hint}", kind.macro_name())).to_compile_error();
        return quote!(#e #original).into();
    }
    let item = parse_macro_input!(item as Item);
    // On error the item is kept as written, so the only message is ours.
    expand(kind, item, migrate)
        .unwrap_or_else(|e| {
            let e = e.into_compile_error();
            quote!(#e #original)
        })
        .into()
}

/// Exports a 1→1 map operator: on `fn(Record) -> Result<Record>`, on
/// `fn(RecordView) -> Result<Mapped>` (reads the record where it lies; `Mapped::Unchanged`
/// sends nothing back) or on `impl Map for T`.
#[proc_macro_attribute]
pub fn map(attr: TokenStream, item: TokenStream) -> TokenStream {
    run(Kind::Map, attr, item)
}

/// Exports a filter: on `fn(&Record) -> Result<bool>`, `fn(RecordView) -> Result<bool>` or
/// `impl Filter for T`.
#[proc_macro_attribute]
pub fn filter(attr: TokenStream, item: TokenStream) -> TokenStream {
    run(Kind::Filter, attr, item)
}

/// Exports a flat-map: on `fn(Record) -> Result<Vec<Record>>` or `impl FlatMap for T`.
#[proc_macro_attribute]
pub fn flat_map(attr: TokenStream, item: TokenStream) -> TokenStream {
    run(Kind::FlatMap, attr, item)
}

/// Exports a key selector: on `fn(&Record) -> Result<Vec<u8>>`, `fn(RecordView) -> Result<Vec<u8>>`
/// or `impl KeySelector for T`.
#[proc_macro_attribute]
pub fn key_selector(attr: TokenStream, item: TokenStream) -> TokenStream {
    run(Kind::KeySelector, attr, item)
}

/// Exports a keyed process function: on `impl Process for T`. `#[weir_sdk::process(migrate)]`
/// also exports the `migrate` interface through `impl Migrate for T` (state migration on a
/// hot reload, world `process-migrating`).
#[proc_macro_attribute]
pub fn process(attr: TokenStream, item: TokenStream) -> TokenStream {
    run(Kind::Process, attr, item)
}

/// Exports a window aggregate function: on `impl Aggregate for T`.
#[proc_macro_attribute]
pub fn aggregate(attr: TokenStream, item: TokenStream) -> TokenStream {
    run(Kind::Aggregate, attr, item)
}

/// Exports a process-window function: on `impl WindowProcess for T`.
#[proc_macro_attribute]
pub fn window_process(attr: TokenStream, item: TokenStream) -> TokenStream {
    run(Kind::WindowProcess, attr, item)
}
