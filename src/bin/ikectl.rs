fn main() {
    eprintln!(
        "usage: ikectl [--ctl PATH] up|down NAME | status [--json] | reload | check [--conf PATH] [--secrets PATH]\n(not implemented yet)"
    );
    std::process::exit(2);
}
