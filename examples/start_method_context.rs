//! Seed 003, "上下文和启动方法" (contexts and start methods), "指定上下文": choose the start method
//! once with `set_start_method`, or several in one program with `get_context`; a child
//! puts 'hello' on a queue made by the same context.
//! Run: `cargo run --example start_method_context`.

use multiprocess::{Queue, StartMethod, get_context};

fn foo(q: Queue<String>) {
    q.put("hello".to_string()).expect("put");
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    multiprocess::set_start_method(StartMethod::Spawn)?;
    let q = Queue::new()?;
    let mut p = multiprocess::Process::new(foo, q.clone());
    p.start()?;
    println!("{}", q.get()?);
    p.join()?;
    // set_start_method should not be called twice with another method:
    println!(
        "set again: {:?}",
        multiprocess::set_start_method(StartMethod::Fork).map_err(|e| e.kind())
    );

    let ctx = get_context(StartMethod::ForkServer);
    let q = ctx.queue()?;
    let mut p = ctx.process(foo, q.clone());
    p.start()?;
    println!("{} (via the {} context)", q.get()?, ctx.start_method());
    p.join()?;
    println!("current start method: {}", multiprocess::get_start_method());
    println!(
        "all start methods: {:?}",
        multiprocess::get_all_start_methods()
    );
    Ok(())
}
