//! Test kit: throwaway real PostgreSQL clusters for pgwal's tests.
