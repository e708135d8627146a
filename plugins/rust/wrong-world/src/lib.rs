//! A valid component of another world (it exports `greet`, not Corral's
//! handler). Upload must refuse it, naming the missing export.
wit_bindgen::generate!({
    inline: r#"
        package test:other;
        world other {
            export greet: func() -> string;
        }
    "#,
});

struct Other;

impl Guest for Other {
    fn greet() -> String {
        "hello".into()
    }
}

export!(Other);
