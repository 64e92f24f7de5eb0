fn main() {
    eprintln!(
        "usage: ikev2d [--conf PATH] [--secrets PATH] [--ctl PATH] [--port N] [--natt-port N] [--kernel xfrm|none]\n(the daemon is not implemented yet)"
    );
    std::process::exit(2);
}
