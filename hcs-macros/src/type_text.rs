//! Rendering a type as a person writes it (`Vec<(f64, f64)>`, not `Vec < (f64 , f64) >`).

use quote::ToTokens;

pub fn type_text(ty: &impl ToTokens) -> String {
    let raw = ty.to_token_stream().to_string();
    let mut out = String::with_capacity(raw.len());
    let chars: Vec<char> = raw.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = if i > 0 { chars[i - 1] } else { ' ' };
            let next = chars.get(i + 1).copied().unwrap_or(' ');
            let drop = matches!(next, '<' | '>' | ',' | ':' | ')' | ']')
                || matches!(prev, '<' | '&' | '(' | '[' | ':')
                || (prev == '>' && matches!(next, '>' | ':'));
            if drop {
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::type_text;

    #[test]
    fn renders_types_compactly() {
        let ty: syn::Type = syn::parse_str("Vec < ( f64 , f64 ) >").expect("type");
        assert_eq!(type_text(&ty), "Vec<(f64, f64)>");
        let ty: syn::Type = syn::parse_str("& std :: collections :: BTreeMap < String , Vec < u8 > >").expect("type");
        assert_eq!(type_text(&ty), "&std::collections::BTreeMap<String, Vec<u8>>");
        let ty: syn::Type = syn::parse_str("ndarray::Array3<f32>").expect("type");
        assert_eq!(type_text(&ty), "ndarray::Array3<f32>");
    }
}
