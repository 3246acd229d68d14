// The plate supplies `pixel_size` as `f64`; `scale_bar_u32` takes it as `u32`.
use ui_tests::fixtures::*;

fn main() {
    let _ = hcs::pipeline! {
        name = "plate input type";
        step "scale" { func = scale_bar_u32; }
    };
}
