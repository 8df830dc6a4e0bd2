//! A TCP proxy in front of a shared server (Postgres, RabbitMQ) that one test can break without
//! disturbing the other tests that use the same server: it cuts its own connections, refuses new
//! ones, or leaves its connections open while no byte gets through, as a broken network path does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What happens to the connections opened before the latest command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Forward,
    /// Connections numbered below `before` stay open and carry nothing.
    Stall {
        before: u64,
    },
    /// Connections numbered below `before` are closed.
    Cut {
        before: u64,
    },
}

pub struct TcpProxy {
    addr: SocketAddr,
    commands: watch::Sender<Command>,
    opened: Arc<AtomicU64>,
    refusing: Arc<AtomicBool>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a random loopback port and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let (listener, addr) = super::random_listener().await;
        let (commands, _) = watch::channel(Command::Forward);
        let opened = Arc::new(AtomicU64::new(0));
        let refusing = Arc::new(AtomicBool::new(false));
        let accept = tokio::spawn(accept(
            listener,
            target,
            commands.clone(),
            Arc::clone(&opened),
            Arc::clone(&refusing),
        ));
        Self {
            addr,
            commands,
            opened,
            refusing,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The connections open now stay open but carry nothing more; new ones work.
    pub fn stall_open_connections(&self) {
        let before = self.opened.load(Ordering::SeqCst);
        self.commands.send_replace(Command::Stall { before });
    }

    /// Closes every connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        let before = self.opened.load(Ordering::SeqCst);
        self.commands.send_replace(Command::Cut { before });
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        let before = self.opened.load(Ordering::SeqCst);
        self.commands.send_replace(Command::Cut { before });
    }
}

async fn accept(
    listener: TcpListener,
    target: SocketAddr,
    commands: watch::Sender<Command>,
    opened: Arc<AtomicU64>,
    refusing: Arc<AtomicBool>,
) {
    while let Ok((client, _)) = listener.accept().await {
        if refusing.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let number = opened.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(link(client, target, number, commands.subscribe()));
    }
}

async fn link(
    mut client: TcpStream,
    target: SocketAddr,
    number: u64,
    mut commands: watch::Receiver<Command>,
) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let applies = move |command: &Command| match *command {
        Command::Forward => false,
        Command::Stall { before } | Command::Cut { before } => number < before,
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
        _ = commands.wait_for(applies) => {}
    }
    // Stalled: hold both sockets open, forwarding nothing, until this link is cut.
    let cut =
        move |command: &Command| matches!(command, Command::Cut { before } if number < *before);
    if !cut(&commands.borrow()) {
        let _ = commands.wait_for(cut).await;
    }
}
