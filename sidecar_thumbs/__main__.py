from sidecar_thumbs.cli import cli

if __name__ == "__main__":
    cli()
