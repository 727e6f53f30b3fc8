//! Attribute macros of [overrun](https://docs.rs/overrun): `#[measure]` and
//! `#[main]`. Use them through the `overrun` crate, which re-exports them and
//! holds the runtime they expand to.
//!
//! Budget literals are parsed here, at compile time: a literal that does not
//! parse, an unknown key or an attribute on something that is not a function
//! is a compile error pointing at the offending token, emitted together with
//! the untouched item so no follow-on errors pile up.
//!
//! The examples (doctests) live on the re-exports, `overrun::measure` and
//! `overrun::main`: this crate cannot depend on the runtime it expands to.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Ident, ItemFn, Lit, LitStr, ReturnType, Token, UnOp};

/// Measures a function. See `overrun::measure`.
#[proc_macro_attribute]
pub fn measure(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args.into(), item.into(), Target::Measure).into()
}

/// Measures a whole run. See `overrun::main`.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args.into(), item.into(), Target::Main).into()
}

/// A duration literal checked at compile time. See `overrun::duration!`.
#[proc_macro]
pub fn duration(input: TokenStream) -> TokenStream {
    literal(input.into(), "duration", |text| {
        overrun_literal::parse_duration(text)
            .map(|ns| quote!(::core::time::Duration::from_nanos(#ns)))
    })
    .into()
}

/// A size literal checked at compile time. See `overrun::size!`.
#[proc_macro]
pub fn size(input: TokenStream) -> TokenStream {
    literal(input.into(), "size", |text| {
        overrun_literal::parse_size(text).map(|bytes| quote!(#bytes))
    })
    .into()
}

/// One string literal, parsed at compile time; an error points at it.
fn literal(
    input: TokenStream2,
    what: &str,
    parse: impl Fn(&str) -> Result<TokenStream2, overrun_literal::LiteralError>,
) -> TokenStream2 {
    let lit = match syn::parse2::<LitStr>(input) {
        Ok(lit) => lit,
        Err(err) => {
            let msg = format!(
                "expected a {what} string such as {}",
                if what == "size" {
                    "\"64KiB\""
                } else {
                    "\"250us\""
                }
            );
            return syn::Error::new(err.span(), msg).to_compile_error();
        }
    };
    match parse(&lit.value()) {
        Ok(tokens) => tokens,
        Err(e) => syn::Error::new_spanned(&lit, format!("invalid {what}: {e}")).to_compile_error(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Measure,
    Main,
}

impl Target {
    fn attr(self) -> &'static str {
        match self {
            Target::Measure => "#[overrun::measure]",
            Target::Main => "#[overrun::main]",
        }
    }

    fn keys(self) -> Vec<&'static str> {
        match self {
            // The budget's keys, its time budget called `budget`.
            Target::Measure => ["name", "budget"]
                .into_iter()
                .chain(overrun_literal::BUDGET_KEYS[1..].iter().copied())
                .collect(),
            Target::Main => vec!["budget", "memory", "config"],
        }
    }
}

/// `key = value`.
struct Arg {
    key: Ident,
    value: Expr,
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key: Ident = input.call(syn::ext::IdentExt::parse_any)?;
        if !input.peek(Token![=]) {
            return Err(syn::Error::new_spanned(
                &key,
                format!("`{key}` needs a value, as in `{key} = ...`"),
            ));
        }
        input.parse::<Token![=]>()?;
        let value: Expr = input.parse()?;
        Ok(Arg { key, value })
    }
}

/// The validated arguments.
#[derive(Default)]
struct Args {
    name: Option<LitStr>,
    budget: Option<(u64, Span)>,
    allocs: Option<u64>,
    bytes: Option<u64>,
    poll: Option<(u64, Span)>,
    /// Objectives over the window: `(quantile's variant, ns)` in key order.
    quantiles: Vec<(&'static str, u64)>,
    window: Option<(u64, Span)>,
    /// Parts per million.
    error_rate: Option<u64>,
    memory: Option<u64>,
    /// `#[main(config = "overrun.toml")]`: the policy file watched for the
    /// run.
    config: Option<LitStr>,
}

fn parse_args(tokens: TokenStream2, target: Target) -> syn::Result<Args> {
    let parsed =
        syn::parse::Parser::parse2(Punctuated::<Arg, Token![,]>::parse_terminated, tokens)?;
    let mut args = Args::default();
    let mut seen: Vec<String> = Vec::new();
    for Arg { key, value } in parsed {
        let name = key.to_string();
        if !target.keys().contains(&name.as_str()) {
            return Err(syn::Error::new_spanned(
                &key,
                format!(
                    "unknown key `{name}` for {}; expected one of: {}",
                    target.attr(),
                    target.keys().join(", ")
                ),
            ));
        }
        if seen.contains(&name) {
            return Err(syn::Error::new_spanned(
                &key,
                format!("`{name}` is given twice"),
            ));
        }
        seen.push(name.clone());
        match name.as_str() {
            "name" => args.name = Some(string(&value, "name", "a string such as \"db.load\"")?),
            "budget" => args.budget = Some((duration_arg(&value, "budget")?, value.span())),
            "poll" => args.poll = Some((duration_arg(&value, "poll")?, value.span())),
            "allocs" => args.allocs = Some(count(&value, "allocs")?),
            "bytes" => args.bytes = Some(size_arg(&value, "bytes")?),
            "p50" | "p90" | "p95" | "p99" | "p999" => {
                let variant = match name.as_str() {
                    "p50" => "P50",
                    "p90" => "P90",
                    "p95" => "P95",
                    "p99" => "P99",
                    _ => "P999",
                };
                args.quantiles.push((variant, duration_arg(&value, &name)?));
            }
            "window" => {
                let ns = duration_arg(&value, "window")?;
                if ns < overrun_literal::MIN_WINDOW_NS {
                    return Err(syn::Error::new_spanned(
                        &value,
                        "`window` is at least \"1s\": objectives are evaluated off the call path, ten times per window",
                    ));
                }
                args.window = Some((ns, key.span()));
            }
            "error_rate" => args.error_rate = Some(percent_arg(&value, "error_rate")?),
            "memory" => args.memory = Some(size_arg(&value, "memory")?),
            "config" => {
                let path = string(&value, "config", "a path such as \"overrun.toml\"")?;
                if path.value().trim().is_empty() {
                    return Err(syn::Error::new_spanned(&path, "`config` cannot be empty"));
                }
                args.config = Some(path);
            }
            _ => unreachable!("checked against the key list"),
        }
    }
    if let (Some((_, span)), true) = (
        args.window,
        args.quantiles.is_empty() && args.error_rate.is_none(),
    ) {
        return Err(syn::Error::new(
            span,
            "`window` is the window of an objective; add one, such as `p99 = \"50ms\"` or `error_rate = \"1%\"`",
        ));
    }
    if let Some(name) = args.name.as_ref().filter(|n| n.value().trim().is_empty()) {
        return Err(syn::Error::new_spanned(name, "`name` cannot be empty"));
    }
    Ok(args)
}

fn string(value: &Expr, key: &str, expected: &str) -> syn::Result<LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.clone()),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{key}` takes {expected}"),
        )),
    }
}

fn duration_arg(value: &Expr, key: &str) -> syn::Result<u64> {
    let lit = string(
        value,
        key,
        "a duration string such as \"250us\", \"2ms\" or \"3s\"",
    )?;
    overrun_literal::parse_duration(&lit.value())
        .map_err(|e| syn::Error::new_spanned(&lit, format!("invalid `{key}`: {e}")))
}

fn percent_arg(value: &Expr, key: &str) -> syn::Result<u64> {
    let lit = string(value, key, "a percentage such as \"1%\" or \"0.1%\"")?;
    overrun_literal::parse_percent(&lit.value())
        .map_err(|e| syn::Error::new_spanned(&lit, format!("invalid `{key}`: {e}")))
}

fn count(value: &Expr, key: &str) -> syn::Result<u64> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<u64>().map_err(|_| {
            syn::Error::new_spanned(
                i,
                format!("`{key}` takes a non-negative integer that fits in u64"),
            )
        }),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => Err(syn::Error::new_spanned(
            value,
            format!("`{key}` cannot be negative; it takes a count such as `{key} = 8`"),
        )),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{key}` takes a non-negative integer, such as `{key} = 8`"),
        )),
    }
}

fn size_arg(value: &Expr, key: &str) -> syn::Result<u64> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => overrun_literal::parse_size(&s.value())
            .map_err(|e| syn::Error::new_spanned(s, format!("invalid `{key}`: {e}"))),
        Expr::Lit(ExprLit {
            lit: Lit::Int(_), ..
        })
        | Expr::Unary(_) => count(value, key),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{key}` takes a size such as \"64KiB\" or a number of bytes"),
        )),
    }
}

fn expand(args: TokenStream2, item: TokenStream2, target: Target) -> TokenStream2 {
    match try_expand(args, item.clone(), target) {
        Ok(tokens) => tokens,
        Err(err) => {
            // The item goes out untouched beside the error, so the only
            // diagnostic is ours.
            let err = err.to_compile_error();
            quote!(#err #item)
        }
    }
}

fn try_expand(args: TokenStream2, item: TokenStream2, target: Target) -> syn::Result<TokenStream2> {
    if target == Target::Measure
        && let Ok(block) = syn::parse2::<syn::ItemImpl>(item.clone())
    {
        return measure_impl(args, block);
    }
    let args = parse_args(args, target)?;
    let func = parse_fn(item, target)?;
    if let Some(constness) = &func.sig.constness {
        return Err(syn::Error::new_spanned(
            constness,
            format!("{} cannot measure a `const fn`", target.attr()),
        ));
    }
    if let (Some((_, span)), None) = (args.poll, &func.sig.asyncness)
        && returned_future(&func.sig.output).is_none()
    {
        return Err(syn::Error::new(
            span,
            "`poll` is a budget for one poll of an `async fn` (or of the future a function returns); this function is neither",
        ));
    }
    if target == Target::Main && func.sig.ident != "main" {
        return Err(syn::Error::new_spanned(
            &func.sig.ident,
            "#[overrun::main] goes on the program's `fn main`; use #[overrun::measure] elsewhere",
        ));
    }
    if !cfg!(feature = "enabled") {
        return Ok(func.into_token_stream());
    }
    Ok(match target {
        Target::Measure => measure_fn(func, &args),
        Target::Main => main_fn(func, &args),
    })
}

fn parse_fn(item: TokenStream2, target: Target) -> syn::Result<ItemFn> {
    if let Ok(func) = syn::parse2::<ItemFn>(item.clone()) {
        return Ok(func);
    }
    // A function signature without a body (a trait's required method).
    if let Ok(decl) = syn::parse2::<syn::TraitItemFn>(item.clone()) {
        return Err(syn::Error::new_spanned(
            &decl.sig,
            format!("{} needs a function with a body", target.attr()),
        ));
    }
    let what = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(item) => describe(&item),
        Err(_) => "this item".to_owned(),
    };
    let first = item.into_iter().next();
    let msg = format!("{} applies to functions, not to {what}", target.attr());
    Err(match first {
        Some(tok) => syn::Error::new_spanned(tok, msg),
        None => syn::Error::new(Span::call_site(), msg),
    })
}

fn describe(item: &syn::Item) -> String {
    let s = match item {
        syn::Item::Struct(_) => "a struct",
        syn::Item::Enum(_) => "an enum",
        syn::Item::Union(_) => "a union",
        syn::Item::Const(_) => "a const",
        syn::Item::Static(_) => "a static",
        syn::Item::Mod(_) => "a module",
        syn::Item::Impl(_) => "an impl block",
        syn::Item::Trait(_) => "a trait (put it on the methods)",
        syn::Item::Type(_) => "a type alias",
        syn::Item::Use(_) => "a use declaration",
        _ => "this item",
    };
    s.to_owned()
}

/// `#[measure]` on an `impl` block: every method with a body gets
/// `#[measure]` with the block's arguments (`poll` only on `async` ones),
/// unless it carries its own `#[measure(..)]`, which then wins. Each method's
/// identity carries the type (`A::new`, `<A as Display>::fmt`).
fn measure_impl(args: TokenStream2, mut block: syn::ItemImpl) -> syn::Result<TokenStream2> {
    let parsed =
        syn::parse::Parser::parse2(Punctuated::<Arg, Token![,]>::parse_terminated, args.clone())?;
    // Validates every key and value once, on the block's own tokens.
    parse_args(args, Target::Measure)?;
    if let Some(arg) = parsed.iter().find(|a| a.key == "name") {
        return Err(syn::Error::new_spanned(
            &arg.key,
            "`name` on an impl block would give every method the same name; put it on a method",
        ));
    }
    // `#[measure]`, `#[overrun::measure]` or `#[::overrun::measure]`: the
    // method's own attribute (a renamed import is not recognised and would
    // measure the method twice; write the path).
    let is_measure = |attr: &syn::Attribute| {
        let segments: Vec<String> = attr
            .path()
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect();
        matches!(
            segments.iter().map(String::as_str).collect::<Vec<_>>()[..],
            ["measure"] | ["overrun", "measure"]
        )
    };
    for item in &mut block.items {
        let syn::ImplItem::Fn(method) = item else {
            continue;
        };
        if method.attrs.iter().any(is_measure) || method.sig.constness.is_some() {
            continue;
        }
        let is_async =
            method.sig.asyncness.is_some() || returned_future(&method.sig.output).is_some();
        let keys = parsed
            .iter()
            .filter(|a| is_async || a.key != "poll")
            .map(|Arg { key, value }| quote!(#key = #value));
        method
            .attrs
            .push(syn::parse_quote!(#[::overrun::measure(#(#keys),*)]));
    }
    Ok(block.into_token_stream())
}

fn budget_expr(args: &Args) -> TokenStream2 {
    let mut expr = quote!(::overrun::__private::Budget::none());
    if let Some((ns, _)) = args.budget {
        expr = quote!(#expr.with_time_ns(#ns));
    }
    if let Some(n) = args.allocs {
        expr = quote!(#expr.with_allocs(#n));
    }
    if let Some(n) = args.bytes {
        expr = quote!(#expr.with_bytes(#n));
    }
    if let Some((ns, _)) = args.poll {
        expr = quote!(#expr.with_poll_ns(#ns));
    }
    for (variant, ns) in &args.quantiles {
        let variant = Ident::new(variant, Span::call_site());
        expr = quote!(#expr.with_quantile_ns(::overrun::__private::Quantile::#variant, #ns));
    }
    if let Some((ns, _)) = args.window {
        expr = quote!(#expr.with_window_ns(#ns));
    }
    if let Some(ppm) = args.error_rate {
        expr = quote!(#expr.with_error_rate_ppm(#ppm));
    }
    expr
}

fn site_static(func: &ItemFn, args: &Args, kind: &str, site: &Ident) -> TokenStream2 {
    let name = match &args.name {
        Some(name) => name.value(),
        None => func.sig.ident.to_string(),
    };
    let is_main = kind == "Main";
    let kind = Ident::new(kind, Span::call_site());
    let budget = budget_expr(args);
    let at = func.sig.ident.span();
    let line = quote_spanned!(at=> ::overrun::__private::line!());
    let file = quote_spanned!(at=> ::overrun::__private::file!());
    let new_site = quote! {
        ::overrun::__private::Site::new(
            #name,
            ::overrun::__private::module_path!(),
            #file,
            #line,
            ::overrun::__private::SiteKind::#kind,
            #budget,
        )
    };
    if is_main {
        return quote! {
            static #site: ::overrun::__private::Site = #new_site;
        };
    }
    // Gathered by the linker (where it can be), so the site has its series
    // and its identity before its first call.
    let declare = quote! {
        ::overrun::__declare_site!(#site);
    };
    if args.name.is_some() {
        return quote! {
            static #site: ::overrun::__private::Site = #new_site;
            #declare
        };
    }
    // The path of an item declared in the site's initialiser names the
    // function with its type (`app::A::new::__OVERRUN_SITE::__overrun_here`);
    // the site reads its identity from it once, when it registers.
    let here = Ident::new("__overrun_here", Span::call_site());
    quote! {
        static #site: ::overrun::__private::Site = {
            fn #here() {}
            #new_site.in_fn(|| ::overrun::__private::type_name_of_val(&#here))
        };
        #declare
    }
}

/// How the declared return type can be used in the expansion.
#[derive(Clone)]
enum Output {
    /// A type that can be written as a `let` binding's or a closure's type.
    Named(TokenStream2),
    /// It contains `impl Trait`: only the body can say what it is.
    Opaque,
    /// `!`: the function never returns normally.
    Never,
}

/// Finds `impl Trait` anywhere inside a type (`Vec<impl Display>` too).
struct ImplTraitFinder(bool);

impl<'ast> syn::visit::Visit<'ast> for ImplTraitFinder {
    fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
        self.0 = true;
    }
}

fn output(ret: &ReturnType) -> Output {
    match ret {
        ReturnType::Default => Output::Named(quote!(())),
        ReturnType::Type(_, ty) if matches!(peel(ty), syn::Type::Never(_)) => Output::Never,
        ReturnType::Type(_, ty) => {
            let mut finder = ImplTraitFinder(false);
            syn::visit::Visit::visit_type(&mut finder, ty);
            if finder.0 {
                Output::Opaque
            } else {
                Output::Named(ty.to_token_stream())
            }
        }
    }
}

/// A function that returns a future: what it returns is measured the way
/// an `async fn` is (first poll to completion), not the creation of it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReturnedFuture {
    /// `impl Future<Output = T> (+ Send + 'a)`.
    Opaque,
    /// `impl Future<Output = T> + Unpin`: the measured future is boxed to
    /// stay `Unpin`.
    OpaqueUnpin,
    /// `Pin<Box<dyn Future<Output = T> (+ Send + 'a)>>`: what `#[async_trait]`
    /// turns an `async fn` into, and the usual boxed future.
    Boxed,
}

fn is_future_bound(bound: &syn::TypeParamBound) -> bool {
    matches!(bound, syn::TypeParamBound::Trait(t)
        if t.path.segments.last().is_some_and(|s| s.ident == "Future"))
}

/// The one generic type argument of the last segment of `ty`, if the
/// segment is called `name`.
fn only_arg<'t>(ty: &'t syn::Type, name: &str) -> Option<&'t syn::Type> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// `ty` without the invisible groups and parentheses `macro_rules!` and
/// people wrap types in.
fn peel(mut ty: &syn::Type) -> &syn::Type {
    loop {
        ty = match ty {
            syn::Type::Group(g) => &g.elem,
            syn::Type::Paren(p) => &p.elem,
            _ => return ty,
        };
    }
}

fn returned_future(ret: &ReturnType) -> Option<ReturnedFuture> {
    let ReturnType::Type(_, ty) = ret else {
        return None;
    };
    match peel(ty) {
        syn::Type::ImplTrait(t) if t.bounds.iter().any(is_future_bound) => {
            let unpin = t.bounds.iter().any(|b| {
                matches!(b, syn::TypeParamBound::Trait(t)
                    if t.path.segments.last().is_some_and(|s| s.ident == "Unpin"))
            });
            Some(if unpin {
                ReturnedFuture::OpaqueUnpin
            } else {
                ReturnedFuture::Opaque
            })
        }
        ty => {
            let boxed = peel(only_arg(peel(only_arg(ty, "Pin")?), "Box")?);
            match boxed {
                syn::Type::TraitObject(t) if t.bounds.iter().any(is_future_bound) => {
                    Some(ReturnedFuture::Boxed)
                }
                _ => None,
            }
        }
    }
}

/// `expr` when the block is exactly `{ Box::pin(expr) }` (what
/// `#[async_trait]` writes).
fn boxed_tail(block: &syn::Block) -> Option<&Expr> {
    let [syn::Stmt::Expr(Expr::Call(call), None)] = &block.stmts[..] else {
        return None;
    };
    let Expr::Path(path) = &*call.func else {
        return None;
    };
    let names: Vec<String> = path
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let is_box_pin = names.ends_with(&["Box".to_owned(), "pin".to_owned()]);
    match (is_box_pin, call.args.len()) {
        (true, 1) => call.args.first(),
        _ => None,
    }
}

fn measure_fn(func: ItemFn, args: &Args) -> TokenStream2 {
    if let Some(inside) = inside_tracing_span(&func, args) {
        return inside;
    }
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func.clone();
    let hyg = Span::mixed_site();
    let site = Ident::new("__OVERRUN_SITE", Span::call_site());
    let ret = Ident::new("__overrun_ret", hyg);
    let output = output(&sig.output);
    let is_err = is_err_check();
    let body = if sig.asyncness.is_some() {
        let site_def = site_static(&func, args, "Async", &site);
        // The body's value and its `return`s are given the declared type
        // before inference sees the body (`Ok(Box::new(file))` then still
        // coerces to `Result<Box<dyn Read>, _>`): a `return` of that type,
        // never taken, comes first.
        let unit = matches!(&output, Output::Named(ty) if ty.to_string() == "()");
        let (annotated, typed) = match &output {
            // `()` has nothing to coerce to: no fake return.
            Output::Named(ty) if unit => (Some(ty.clone()), quote!()),
            Output::Named(ty) => {
                let fake = Ident::new("__overrun_declared", hyg);
                (
                    Some(ty.clone()),
                    quote! {
                        #[allow(
                            unreachable_code,
                            clippy::diverging_sub_expression,
                            clippy::needless_return,
                            clippy::empty_loop,
                            clippy::let_unit_value
                        )]
                        let () = if false {
                            let #fake: #ty = loop {};
                            return #fake;
                        };
                    },
                )
            }
            Output::Opaque | Output::Never => (None, quote!()),
        };
        let measured = match output {
            Output::Never => quote! {
                ::overrun::__private::Instrumented::new(&#site, async move #block)
            },
            _ => measured_future(
                &site,
                &{
                    let body = inline(&block);
                    quote!(async move { #typed #body })
                },
                annotated.as_ref(),
            ),
        };
        quote! {
            #site_def
            #measured.await
        }
    } else if let Some(shape) = returned_future(&sig.output) {
        // The body runs now and makes the future; the future is what is
        // measured, from its first poll to its completion, like an `async fn`.
        let site_def = site_static(&func, args, "Async", &site);
        let body = inline(&block);
        let once = Ident::new("__overrun_once", hyg);
        let body_fn = Ident::new("__overrun_body", hyg);
        let fut = Ident::new("__overrun_future", hyg);
        let typed = match &output {
            Output::Named(ty) => quote!(-> #ty),
            _ => quote!(),
        };
        let instrumented = measured_future(&site, &quote!(#fut), None);
        // `#[async_trait]`'s shape, `{ Box::pin(async move { … }) }`: the
        // inner future is measured inside the one box, not boxed again.
        if let (ReturnedFuture::Boxed, Some(inner)) = (shape, boxed_tail(&block)) {
            return quote! {
                #(#attrs)*
                #vis #sig {
                    #site_def
                    let #fut = #inner;
                    ::std::boxed::Box::pin(#instrumented)
                }
            };
        }
        let returned = match shape {
            ReturnedFuture::Opaque => instrumented,
            // `Unpin` without a box: the returned future is `Unpin`, so it
            // is polled in place; `poll_fn` over it is `Unpin` too, and so is
            // the `Instrumented` around that. (An `async` block is not.)
            ReturnedFuture::OpaqueUnpin => quote! {
                ::overrun::__private::Instrumented::new(&#site, {
                    let mut #fut = #fut;
                    ::core::future::poll_fn(move |cx| {
                        let #ret = ::core::task::ready!(::core::future::Future::poll(
                            ::core::pin::Pin::new(&mut #fut),
                            cx,
                        ));
                        if #is_err {
                            ::overrun::__private::mark_async_error();
                        }
                        ::core::task::Poll::Ready(#ret)
                    })
                })
            },
            ReturnedFuture::Boxed => quote!(::std::boxed::Box::pin(#instrumented)),
        };
        quote! {
            #site_def
            let #once = ::overrun::__private::Once;
            let #body_fn = move || #typed {
                #once.consume();
                #body
            };
            let #fut = #body_fn();
            #returned
        }
    } else {
        let site_def = site_static(&func, args, "Sync", &site);
        sync_body(&site_def, &site, &block, output, &is_err)
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    }
}

/// The variable `#[tracing::instrument]` (tracing-attributes) keeps the
/// future of an `async fn` (or of a returned `async` block) in, before it
/// instruments it with the span.
const TRACING_FUTURE: &str = "__tracing_instrument_future";
/// The variable it keeps the entered span's guard of a sync function in.
const TRACING_GUARD: &str = "__tracing_attr_guard";

/// `#[tracing::instrument]` written above `#[measure]` expands first: the
/// body `#[measure]` gets enters the span itself. Measuring around that body
/// would raise a violation after the span is exited, without the span (nor
/// the OpenTelemetry context `tracing-opentelemetry` enters with it). So the
/// measurement goes inside: around the future tracing instruments, or
/// after the statements that enter its span. Found by the names of the
/// variables tracing-attributes declares; were they renamed, the function
/// would be measured around the whole body as before (the same figures,
/// without the span on its violations), and `tests/tracing_order.rs`
/// fails.
fn inside_tracing_span(func: &ItemFn, args: &Args) -> Option<TokenStream2> {
    use syn::visit_mut::VisitMut as _;
    if matches!(output(&func.sig.output), Output::Never) {
        return None;
    }
    let site = Ident::new("__OVERRUN_SITE", Span::call_site());
    let is_err = is_err_check();
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let mut block = (**block).clone();
    let is_future = sig.asyncness.is_some() || returned_future(&sig.output).is_some();
    let body = if is_future {
        // The future's value gets the declared type where an `async fn`
        // declares it (a returned future's is inside its type).
        let annotated = match output(&sig.output) {
            Output::Named(ty) if sig.asyncness.is_some() => Some(ty),
            _ => None,
        };
        let mut wrap = InTracing {
            name: TRACING_FUTURE,
            found: false,
            rewrite: |stmts: &mut Vec<syn::Stmt>, at: usize| {
                let syn::Stmt::Local(local) = &mut stmts[at] else {
                    return;
                };
                let Some(init) = local.init.as_mut() else {
                    return;
                };
                let fut = init.expr.to_token_stream();
                *init.expr = Expr::Verbatim(measured_future(&site, &fut, annotated.as_ref()));
            },
        };
        wrap.visit_block_mut(&mut block);
        if !wrap.found {
            return None;
        }
        let site_def = site_static(func, args, "Async", &site);
        let stmts = &block.stmts;
        quote! {
            #site_def
            #(#stmts)*
        }
    } else {
        let site_def = site_static(func, args, "Sync", &site);
        let out = output(&sig.output);
        let mut split = InTracing {
            name: TRACING_GUARD,
            found: false,
            rewrite: move |stmts: &mut Vec<syn::Stmt>, at: usize| {
                // The statements up to the last that names the guard enter
                // the span (`let guard; if enabled { guard = span.enter() }`);
                // the rest, tracing's body, is measured.
                let entered = stmts
                    .iter()
                    .rposition(|s| mentions(s.to_token_stream(), TRACING_GUARD))
                    .unwrap_or(at)
                    + 1;
                let rest = syn::Block {
                    brace_token: syn::token::Brace::default(),
                    stmts: stmts.split_off(entered),
                };
                let measured = sync_body(&site_def, &site, &rest, out.clone(), &is_err);
                stmts.push(syn::Stmt::Expr(Expr::Verbatim(quote!({ #measured })), None));
            },
        };
        split.visit_block_mut(&mut block);
        if !split.found {
            return None;
        }
        let stmts = &block.stmts;
        quote!(#(#stmts)*)
    };
    Some(quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    })
}

/// Finds the first block (outside nested items and closures) with a `let`
/// of `name`, and hands its statements to `rewrite`.
struct InTracing<F> {
    name: &'static str,
    found: bool,
    rewrite: F,
}

impl<F: FnMut(&mut Vec<syn::Stmt>, usize)> syn::visit_mut::VisitMut for InTracing<F> {
    fn visit_block_mut(&mut self, block: &mut syn::Block) {
        if self.found {
            return;
        }
        let at = block.stmts.iter().position(|s| match s {
            syn::Stmt::Local(local) => binds(&local.pat, self.name),
            _ => false,
        });
        if let Some(at) = at {
            self.found = true;
            (self.rewrite)(&mut block.stmts, at);
            return;
        }
        syn::visit_mut::visit_block_mut(self, block);
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}

    fn visit_expr_closure_mut(&mut self, _: &mut syn::ExprClosure) {}
}

/// `pat` binds `name` (`x`, `x: T`).
fn binds(pat: &syn::Pat, name: &str) -> bool {
    match pat {
        syn::Pat::Ident(p) => p.ident == name,
        syn::Pat::Type(p) => binds(&p.pat, name),
        _ => false,
    }
}

/// `tokens` contain the identifier `name`.
fn mentions(tokens: TokenStream2, name: &str) -> bool {
    tokens.into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(i) => i == name,
        proc_macro2::TokenTree::Group(g) => mentions(g.stream(), name),
        _ => false,
    })
}

/// The statements of the function's body, to go in a block of the
/// expansion: its braces are not kept, so a body written on one line
/// (`{ x + 1 }`) does not become a block inside a block, which rustc warns
/// about as unnecessary braces.
fn inline(block: &syn::Block) -> TokenStream2 {
    let stmts = &block.stmts;
    quote!(#(#stmts)*)
}

/// Whether the function's value, in `__overrun_ret`, is an `Err` (false for
/// anything not a `Result`).
fn is_err_check() -> TokenStream2 {
    let ret = Ident::new("__overrun_ret", Span::mixed_site());
    quote! {{
        #[allow(unused_imports)]
        use ::overrun::__private::{NotResult as _, ResultErr as _};
        (&#ret).__overrun_is_err()
    }}
}

/// The measured future around `fut`, a future of the function's value
/// (given the type `annotated` when there is one): first poll to
/// completion, and an `Err` value marked as an error.
fn measured_future(
    site: &Ident,
    fut: &TokenStream2,
    annotated: Option<&TokenStream2>,
) -> TokenStream2 {
    let ret = Ident::new("__overrun_ret", Span::mixed_site());
    let annotated = annotated.map(|ty| quote!(: #ty));
    let is_err = is_err_check();
    quote! {
        ::overrun::__private::Instrumented::new(&#site, async move {
            let #ret #annotated = #fut.await;
            if #is_err {
                ::overrun::__private::mark_async_error();
            }
            #ret
        })
    }
}

/// The statements of a measured sync function around `block`: a guard
/// entered first, the body run as a closure (its `return`s stay its own),
/// the call finished with whether it returned an error.
fn sync_body(
    site_def: &TokenStream2,
    site: &Ident,
    block: &syn::Block,
    output: Output,
    is_err: &TokenStream2,
) -> TokenStream2 {
    let hyg = Span::mixed_site();
    let ret = Ident::new("__overrun_ret", hyg);
    let guard = Ident::new("__overrun_guard", hyg);
    let once = Ident::new("__overrun_once", hyg);
    // Moving `once` into the body makes the closure `FnOnce`, so it may
    // hand out borrows of the arguments it owns, as the function could.
    // The closure's return type is the declared one, so the body's value
    // and its `return`s coerce to it as they would in the function.
    let body_fn = Ident::new("__overrun_body", hyg);
    let body = inline(block);
    let call = |typed: TokenStream2| {
        quote! {
            let #body_fn = move || #typed {
                #once.consume();
                #body
            };
        }
    };
    match output {
        Output::Never => {
            let call = call(quote!(-> !));
            quote! {
                #site_def
                // Never returns: the guard records the call if it
                // unwinds (an error), as it does for any panic.
                let #guard = ::overrun::__private::Guard::enter(&#site);
                let #once = ::overrun::__private::Once;
                #call
                #body_fn()
            }
        }
        Output::Named(ty) => {
            let call = call(quote!(-> #ty));
            quote! {
                #site_def
                let #guard = ::overrun::__private::Guard::enter(&#site);
                let #once = ::overrun::__private::Once;
                #call
                let #ret: #ty = #body_fn();
                #guard.finish(#is_err);
                #ret
            }
        }
        Output::Opaque => {
            let call = call(quote!());
            quote! {
                #site_def
                let #guard = ::overrun::__private::Guard::enter(&#site);
                let #once = ::overrun::__private::Once;
                #call
                let #ret = #body_fn();
                #guard.finish(#is_err);
                #ret
            }
        }
    }
}

fn main_fn(func: ItemFn, args: &Args) -> TokenStream2 {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func.clone();
    let site = Ident::new("__OVERRUN_SITE", Span::call_site());
    let run = Ident::new("__overrun_run", Span::mixed_site());
    let site_def = site_static(&func, args, "Main", &site);
    let memory = args.memory.unwrap_or(u64::MAX);
    let body = inline(&block);
    let config = args.config.as_ref().map(|path| {
        let watch = Ident::new("__overrun_config", Span::mixed_site());
        quote! {
            let #watch = ::overrun::__private::watch_config(#path);
        }
    });
    quote! {
        #(#attrs)*
        #vis #sig {
            #site_def
            let #run = ::overrun::__private::Run::start(
                &#site,
                #memory,
                ::core::cfg!(panic = "abort"),
                ::core::env!("CARGO_PKG_VERSION"),
                ::core::option_env!("OVERRUN_GIT_SHA"),
                ::core::cfg!(debug_assertions),
            );
            #config
            #body
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> TokenStream2 {
        quote! {
            /// Docs stay.
            pub fn parse(line: &str) -> Result<u32, std::num::ParseIntError> {
                line.trim().parse()
            }
        }
    }

    #[test]
    fn bad_arguments_are_rejected_with_or_without_the_feature() {
        let out = expand(quote!(budget = "10 parsecs"), item(), Target::Measure).to_string();
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("parsecs"));
        // The untouched item follows the error.
        assert!(out.ends_with(&item().to_string()), "{out}");
    }

    #[cfg(feature = "enabled")]
    #[test]
    fn enabled_instruments() {
        let out = expand(quote!(budget = "2ms"), item(), Target::Measure).to_string();
        assert!(out.contains("Guard"), "{out}");
        assert!(out.contains("2000000u64"), "{out}");
    }

    #[cfg(not(feature = "enabled"))]
    #[test]
    fn disabled_emits_the_function_unchanged() {
        let out = expand(quote!(budget = "2ms", allocs = 8), item(), Target::Measure);
        assert_eq!(out.to_string(), item().to_string());
        let main = quote!(
            fn main() {}
        );
        let out = expand(
            quote!(budget = "3s", memory = "1GiB"),
            main.clone(),
            Target::Main,
        );
        assert_eq!(out.to_string(), main.to_string());
    }
}
