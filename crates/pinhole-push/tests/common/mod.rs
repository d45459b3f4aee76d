pub mod nginx_rtmp;
