//! The gRPC contracts of the Genie services, generated at build time from `genie/**/*.proto`.

/// Encoded `FileDescriptorSet` of every service, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("genie_descriptor");

pub mod auth {
    pub mod v1 {
        tonic::include_proto!("genie.auth.v1");
    }
}

pub mod usage {
    pub mod v1 {
        tonic::include_proto!("genie.usage.v1");
    }
}

pub mod credentials {
    pub mod v1 {
        tonic::include_proto!("genie.credentials.v1");

        impl std::fmt::Debug for Secret {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("Secret([redacted])")
            }
        }
    }
}

pub mod skills {
    pub mod v1 {
        tonic::include_proto!("genie.skills.v1");
    }
}

pub mod queue {
    pub mod v1 {
        tonic::include_proto!("genie.queue.v1");
    }
}
