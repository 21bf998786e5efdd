from sidecar_thumbs.cli.main import cli

if __name__ == "__main__":
    cli()
